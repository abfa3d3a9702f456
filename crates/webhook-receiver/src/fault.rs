//! Faults the end-to-end tests inject into the drain worker, compiled only with the
//! `fault-injection` feature: a release build of `runtime` has no switch that stops it
//! writing events out or makes it exit (`cargo build --release -p runtime-cli` does not
//! enable the feature; the tests get it through runtime-cli's dev-dependency).

/// The faults a run injects; none without the feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Faults {
    /// Keep every event in the store, unwritten, until shutdown; then stop.
    pub hold: bool,
    /// Keep every event in the store until shutdown, then exit right after appending
    /// them, before marking them done (status 70).
    pub exit_after_append: bool,
}

#[cfg(feature = "fault-injection")]
mod enabled {
    use super::Faults;

    /// Environment variable that injects a fault.
    pub const FAULT_ENV: &str = "WEBHOOK_RECEIVER_FAULT";

    impl Faults {
        /// The faults `WEBHOOK_RECEIVER_FAULT` asks for (`hold` or `exit_after_append`).
        pub(crate) fn from_env() -> Self {
            let fault = std::env::var(FAULT_ENV).unwrap_or_default();
            let faults = Self {
                hold: fault == "hold",
                exit_after_append: fault == "exit_after_append",
            };
            if faults != Self::default() {
                tracing::warn!(
                    "{FAULT_ENV}={fault}: events are stored but not written out until shutdown"
                );
            }
            faults
        }

        /// Exits the process when asked to crash between the append and the done mark.
        pub(crate) fn after_append(&self) {
            if self.exit_after_append {
                tracing::error!(
                    "{FAULT_ENV}=exit_after_append: exiting after the append, before the done mark"
                );
                std::process::exit(70);
            }
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
impl Faults {
    /// No faults: the feature is off.
    pub(crate) fn from_env() -> Self {
        Self::default()
    }

    /// Nothing to inject.
    pub(crate) fn after_append(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without the feature nothing can switch a fault on, whatever the environment says.
    #[cfg(not(feature = "fault-injection"))]
    #[test]
    fn without_the_feature_there_is_no_fault() {
        assert_eq!(Faults::from_env(), Faults::default());
    }

    #[cfg(feature = "fault-injection")]
    #[test]
    fn with_the_feature_an_unset_variable_is_no_fault() {
        if std::env::var_os(enabled::FAULT_ENV).is_none() {
            assert_eq!(Faults::from_env(), Faults::default());
        }
    }
}
