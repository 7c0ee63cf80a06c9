//! Allowed ranges and defaults, and the checks that name field, value and
//! range when a value is outside them.

use crate::ModelError;

/// Default drain timeout (300 s, as a cloud ALB's deregistration delay).
pub const DEFAULT_DRAIN_TIMEOUT_MS: u64 = 300_000;
/// Longest drain timeout (3600 s).
pub const MAX_DRAIN_TIMEOUT_MS: u64 = 3_600_000;
/// Default listener request timeout (60 s).
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 60_000;
/// Shortest listener request timeout (1 s).
pub const MIN_REQUEST_TIMEOUT_MS: u64 = 1_000;
/// Longest listener request timeout (600 s).
pub const MAX_REQUEST_TIMEOUT_MS: u64 = 600_000;
/// Shortest slow-start window (30 s).
pub const MIN_SLOW_START_MS: u64 = 30_000;
/// Longest slow-start window (900 s).
pub const MAX_SLOW_START_MS: u64 = 900_000;
/// Shortest health-check interval (1 s).
pub const MIN_HEALTH_INTERVAL_MS: u64 = 1_000;
/// Longest health-check interval (300 s).
pub const MAX_HEALTH_INTERVAL_MS: u64 = 300_000;
/// Shortest health-check timeout (1 s).
pub const MIN_HEALTH_TIMEOUT_MS: u64 = 1_000;
/// Longest health-check timeout (120 s).
pub const MAX_HEALTH_TIMEOUT_MS: u64 = 120_000;
/// Default backend weight.
pub const DEFAULT_WEIGHT: u8 = 100;
/// Largest backend weight.
pub const MAX_WEIGHT: u8 = 100;

/// A group name: 1..=63 of `[a-z0-9_-]`, starting with a letter or digit.
pub fn validate_group_name(name: &str) -> Result<(), ModelError> {
    validate_object_name("group", name)
}

/// An object's name (a group's, a certificate's): 1..=63 of `[a-z0-9_-]`,
/// starting with a letter or digit; `field` names it in the refusal.
pub(crate) fn validate_object_name(field: &'static str, name: &str) -> Result<(), ModelError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ModelError::Invalid {
            field: field.into(),
            value: name.to_string(),
            expected: "1 to 63 of a-z, 0-9, '-', '_', starting with a letter or digit".into(),
        })
    }
}

/// A backend address: `host:port` with a DNS name or IPv4 host, or
/// `[v6]:port`; port 1..=65535.
pub fn validate_backend_addr(addr: &str) -> Result<(), ModelError> {
    let invalid = || ModelError::Invalid {
        field: "backend".into(),
        value: addr.to_string(),
        expected: "host:port with port 1..=65535 (e.g. 10.0.0.11:8080, ecs01:8080, [::1]:8080)"
            .into(),
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if port == 0 {
        return Err(invalid());
    }
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    };
    if host_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

/// A listener port: 1..=65535.
pub fn validate_port(port: u32) -> Result<u16, ModelError> {
    match u16::try_from(port) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(ModelError::OutOfRange {
            field: "port".into(),
            value: port.to_string(),
            range: "1..=65535".into(),
        }),
    }
}

/// A backend weight: 0..=100.
pub fn validate_weight(weight: u32) -> Result<u8, ModelError> {
    match u8::try_from(weight) {
        Ok(w) if w <= MAX_WEIGHT => Ok(w),
        _ => Err(ModelError::OutOfRange {
            field: "weight".into(),
            value: weight.to_string(),
            range: "0..=100".into(),
        }),
    }
}

/// A drain timeout: 0..=3600 s.
pub fn validate_drain_timeout(ms: u64) -> Result<(), ModelError> {
    drain_timeout_within("drain_timeout", ms)
}

/// A node drain's timeout: 0..=3600 s.
pub fn validate_node_drain_timeout(ms: u64) -> Result<(), ModelError> {
    drain_timeout_within("timeout", ms)
}

/// `ms` as the timeout `field` of a drain: 0..=3600 s.
fn drain_timeout_within(field: &'static str, ms: u64) -> Result<(), ModelError> {
    if ms <= MAX_DRAIN_TIMEOUT_MS {
        Ok(())
    } else {
        Err(ModelError::OutOfRange {
            field: field.into(),
            value: format_ms(ms),
            range: "0s..=3600s".into(),
        })
    }
}

/// A slow-start window: 30..=900 s.
pub fn validate_slow_start(ms: u64) -> Result<(), ModelError> {
    within(
        "slow_start",
        ms,
        MIN_SLOW_START_MS..=MAX_SLOW_START_MS,
        "30s..=900s",
    )
}

/// A listener request timeout: 1..=600 s.
pub fn validate_request_timeout(ms: u64) -> Result<(), ModelError> {
    within(
        "request_timeout",
        ms,
        MIN_REQUEST_TIMEOUT_MS..=MAX_REQUEST_TIMEOUT_MS,
        "1s..=600s",
    )
}

/// `ms` in `allowed`, or an error naming `field`, the value and `range`.
fn within(
    field: &'static str,
    ms: u64,
    allowed: std::ops::RangeInclusive<u64>,
    range: &'static str,
) -> Result<(), ModelError> {
    if allowed.contains(&ms) {
        Ok(())
    } else {
        Err(ModelError::OutOfRange {
            field: field.into(),
            value: format_ms(ms),
            range: range.into(),
        })
    }
}

/// A health-check interval: 1..=300 s.
pub fn validate_health_interval(ms: u64) -> Result<(), ModelError> {
    within(
        "health_interval",
        ms,
        MIN_HEALTH_INTERVAL_MS..=MAX_HEALTH_INTERVAL_MS,
        "1s..=300s",
    )
}

/// A health-check timeout: 1..=120 s.
pub fn validate_health_timeout(ms: u64) -> Result<(), ModelError> {
    within(
        "health_timeout",
        ms,
        MIN_HEALTH_TIMEOUT_MS..=MAX_HEALTH_TIMEOUT_MS,
        "1s..=120s",
    )
}

/// A healthy or unhealthy threshold (`field`): 1..=10 probes.
pub fn validate_health_threshold(field: &'static str, value: u8) -> Result<(), ModelError> {
    if (1..=10).contains(&value) {
        Ok(())
    } else {
        Err(ModelError::OutOfRange {
            field: field.into(),
            value: value.to_string(),
            range: "1..=10".into(),
        })
    }
}

/// A health check: interval 1..=300 s, timeout 1..=120 s, thresholds
/// 1..=10, a path starting with `/`, status classes among 1xx..5xx, a Host
/// header of visible ASCII, a probe port 1..=65535.
pub fn validate_health_check(c: &crate::HealthCheck) -> Result<(), ModelError> {
    validate_health_interval(c.interval_ms)?;
    validate_health_timeout(c.timeout_ms)?;
    validate_health_threshold("healthy_threshold", c.healthy_threshold)?;
    validate_health_threshold("unhealthy_threshold", c.unhealthy_threshold)?;
    let range = |field: &'static str, value: String, range: &'static str| ModelError::OutOfRange {
        field: field.into(),
        value,
        range: range.into(),
    };
    if c.port == Some(0) {
        return Err(range("health_port", "0".into(), "1..=65535"));
    }
    let visible = |s: &str| s.bytes().all(|b| b.is_ascii_graphic());
    if !c.path.starts_with('/') || c.path.len() > 1024 || !visible(&c.path) {
        return Err(ModelError::Invalid {
            field: "health_path".into(),
            value: c.path.clone(),
            expected: "a path starting with '/', up to 1024 visible ASCII characters".into(),
        });
    }
    if c.status_classes.is_empty() || c.status_classes.iter().any(|k| !(1..=5).contains(k)) {
        let value = c
            .status_classes
            .iter()
            .map(|k| format!("{k}xx"))
            .collect::<Vec<_>>()
            .join(",");
        return Err(ModelError::Invalid {
            field: "health_status".into(),
            value,
            expected: "one or more of 1xx, 2xx, 3xx, 4xx, 5xx".into(),
        });
    }
    if let Some(h) = &c.host {
        if h.is_empty() || h.len() > 255 || !visible(h) {
            return Err(ModelError::Invalid {
                field: "health_host".into(),
                value: h.clone(),
                expected: "1 to 255 visible ASCII characters".into(),
            });
        }
    }
    Ok(())
}

fn format_ms(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in [
            "10.0.0.11:8080",
            "ecs01:80",
            "[::1]:9000",
            "a.b-c.example:65535",
        ] {
            validate_backend_addr(ok).unwrap();
        }
        for bad in [
            "", "host", ":80", "h:0", "h:65536", "h:x", "[zz]:1", "a b:1",
        ] {
            assert!(validate_backend_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_name_field_value_and_range() {
        let e = validate_drain_timeout(3_601_000).unwrap_err();
        assert_eq!(
            e.to_string(),
            "drain_timeout = 3601s is out of range 0s..=3600s"
        );
        assert_eq!(e.field(), Some("drain_timeout"));
        assert!(validate_request_timeout(999).is_err());
        assert!(validate_request_timeout(600_001).is_err());
        validate_request_timeout(1000).unwrap();
        assert!(validate_weight(101).is_err());
        assert_eq!(validate_weight(0).unwrap(), 0);
        assert!(validate_port(0).is_err());
        assert!(validate_port(70000).is_err());
    }

    #[test]
    fn health_checks() {
        let ok = crate::HealthCheck::default();
        validate_health_check(&ok).unwrap();
        let e = validate_health_check(&crate::HealthCheck {
            interval_ms: 500,
            ..ok.clone()
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "health_interval = 500ms is out of range 1s..=300s"
        );
        for bad in [
            crate::HealthCheck {
                unhealthy_threshold: 0,
                ..ok.clone()
            },
            crate::HealthCheck {
                path: "health".into(),
                ..ok.clone()
            },
            crate::HealthCheck {
                status_classes: [6].into_iter().collect(),
                ..ok.clone()
            },
            crate::HealthCheck {
                timeout_ms: 121_000,
                ..ok.clone()
            },
        ] {
            assert!(validate_health_check(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn group_names() {
        validate_group_name("web").unwrap();
        validate_group_name("web-2_x").unwrap();
        for bad in ["", "-web", "Web", "a/b", &"x".repeat(64)] {
            assert!(validate_group_name(bad).is_err(), "{bad}");
        }
    }
}
