//! Routing: which addresses and named receivers a group's notification goes to. The first route whose criteria all
//! match wins; without one, `email.to` and `default_receivers`.

use crate::config::alerting::{EngineConfig, Route};
use crate::domain::{AlertName, ReceiverRef, Severity};

impl Route {
    /// Returns true if and only if every criterion the route sets matches.
    pub fn matches(&self, alertname: AlertName, severity: Severity, account: &str) -> bool {
        self.alertname.is_none_or(|a| a == alertname)
            && self.severity.is_none_or(|s| s == severity)
            && self.account.as_deref().is_none_or(|a| a == account)
    }
}

impl EngineConfig {
    /// The recipients for a notification: the first matching route's, else `email.to`.
    pub fn recipients(
        &self,
        alertname: AlertName,
        severity: Severity,
        account: &str,
    ) -> Vec<String> {
        self.routes
            .iter()
            .find(|r| r.matches(alertname, severity, account))
            .map(|r| r.to.clone())
            .unwrap_or_else(|| self.default_to.clone())
    }

    /// The named receivers for a notification: the first matching route's, else `default_receivers`.
    pub fn receivers(
        &self,
        alertname: AlertName,
        severity: Severity,
        account: &str,
    ) -> Vec<ReceiverRef> {
        self.routes
            .iter()
            .find(|r| r.matches(alertname, severity, account))
            .map(|r| r.receivers.clone())
            .unwrap_or_else(|| self.default_receivers.clone())
    }
}
