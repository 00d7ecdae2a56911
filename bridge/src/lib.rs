//! Salon: a Matrix application service that turns chat rooms into call rooms.
//!
//! The homeserver pushes events to [`appservice`]; they are queued durably in
//! [`store`] and handled in order per room ([`queues`]) by [`room`], which parses
//! [`commands`], decides with the pure [`calls`] state machine and [`power`]
//! levels, and acts through [`matrix`]. [`app`] wires it together with the
//! embedded SFU (`salon-sfu`); [`web`] serves the call page and [`access`]
//! decides who may join; [`focus`] gives Element Call its tokens, as
//! lk-jwt-service would. [`transcription`] turns each participant's audio
//! into text on this machine, [`transcripts`] posts it to the room, and
//! [`minutes`] posts the minutes when a call ends. See `docs/architecture.md`.

pub mod access;
pub mod app;
pub mod appservice;
pub mod calls;
pub mod clock;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod focus;
#[cfg(feature = "fuzzing")]
pub mod fuzz;
pub mod guests;
pub mod livekit;
pub mod lobby;
pub mod matrix;
pub mod media;
pub mod media_e2ee;
pub mod metrics;
pub mod minutes;
pub mod moderation;
pub mod owed;
pub mod percall;
pub mod power;
pub mod queues;
pub mod room;
pub mod rtc;
pub mod store;
pub mod transcription;
pub mod transcripts;
pub mod web;
pub mod worker;
