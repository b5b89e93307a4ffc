//! Shared HTTP mechanics for the upstream clients.
