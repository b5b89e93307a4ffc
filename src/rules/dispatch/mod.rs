//! The dispatch stage, in Alertmanager's stages: the lifecycle's alerts go through [`inhibit`] and [`mute`]
//! (mute windows and silences), are grouped and deduplicated against the notification log ([`group`], with its
//! undo record in [`nflog`]), routed to addresses and receivers ([`route`]) and described ([`lines`]). What comes out
//! is a list of notifications for the sink; nothing flows back from delivery.

pub mod group;
pub mod inhibit;
pub mod lines;
pub mod mute;
pub mod nflog;
pub mod route;
