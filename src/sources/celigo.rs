//! The Celigo integrator.io source.
