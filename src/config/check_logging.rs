//! How vestibule logs: `proxy.log-as-json` (ShinyProxy's switch) turns on one JSON object per
//! line, for log collectors.

use super::convert::Fields;
use super::report::Report;

pub fn check_log_as_json(proxy: &Fields, report: &mut Report) -> bool {
    proxy.boolean("log-as-json", report).unwrap_or(false)
}
