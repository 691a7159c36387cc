//! Every integration test, in one binary: the crate and the test helpers are compiled and
//! linked once, and shared peers (slapd, the OpenID Connect provider, test images) start once.
//! `cargo test --test it -- <module>::` runs one area; CONTRIBUTING.md lists the tiers.

mod common;

mod access_expressions;
mod admin;
mod api;
mod api_tokens;
mod app_domain;
mod auth;
mod browser;
mod cli;
mod config_auth;
mod config_check;
mod config_reload;
mod context_path;
mod custom_header;
mod demo_app;
mod deploy_manifests;
mod docker;
mod docker_browser;
mod docker_config;
mod docker_deploy;
mod grafana;
mod kubernetes;
mod ldap;
mod lifecycle;
mod load_balancer;
mod logs;
mod metrics;
mod named_instances;
mod oidc;
mod parameters;
mod pools;
mod pools_docker;
mod portal;
mod proxy;
mod redis_sentinel;
mod replicas;
mod replicas_docker;
mod rolling_update;
mod saml;
mod seats;
mod security;
mod spel_expressions;
mod swarm;
mod tls;
mod usage_stats;
mod webservice;
mod websocket;
