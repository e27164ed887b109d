//! End-to-end tests: the real daemon on port 0 against an in-process mock upstream.
//! One test binary, so the suite links once.

mod access;
mod accounts_api;
mod cli;
mod cluster;
mod dashboard;
mod failover;
mod forwarding;
mod helpers;
mod management;
mod mock;
mod mock_oauth;
mod oauth;
mod openapi;
mod overhead;
mod providers;
mod records;
mod relay;
mod reliability;
mod sdk;
mod serve_binary;
mod strategies;
mod streaming;
mod tui;
