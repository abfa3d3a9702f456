//! Raises the process's limit on open files, so the receiver can hold as many
//! connections as the system allows an unprivileged process.

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the soft limit now in
/// force, or `None` when it cannot be read. A failure to raise it is logged, not fatal.
pub fn raise() -> Option<u64> {
    #[cfg(unix)]
    {
        raise_unix()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// `rlim_t` is `u64` on Linux but not on every Unix.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)]
fn n(v: libc::rlim_t) -> u64 {
    v as u64
}

#[cfg(unix)]
fn raise_unix() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own; no other memory is touched.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "cannot read the open-file limit; connections are capped at a default"
        );
        return None;
    }
    if lim.rlim_cur >= lim.rlim_max {
        return Some(n(lim.rlim_cur));
    }
    // An unlimited hard limit cannot be the soft one on Linux (nr_open caps it) or macOS
    // (OPEN_MAX): fall back to values those systems accept.
    let targets: &[libc::rlim_t] = if lim.rlim_max == libc::RLIM_INFINITY {
        &[libc::RLIM_INFINITY, 1 << 20, 10_240]
    } else {
        &[lim.rlim_max]
    };
    let mut got = None;
    for &target in targets {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            got = Some(target);
            break;
        }
    }
    let Some(target) = got else {
        tracing::warn!(
            soft = n(lim.rlim_cur),
            hard = n(lim.rlim_max),
            error = %std::io::Error::last_os_error(),
            "cannot raise the open-file limit to the hard limit; fewer connections can be held at once (raise it with `ulimit -n`)"
        );
        return Some(n(lim.rlim_cur));
    };
    tracing::debug!(
        from = n(lim.rlim_cur),
        to = n(target),
        "open-file limit raised"
    );
    Some(n(target))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let now = super::raise().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(now, super::n(lim.rlim_cur));
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
