//! Passwords as etcd keeps them: bcrypt hashes in Go's "$2a$" form, at `--bcrypt-cost`.
//! Hashing is deliberately slow (tens of milliseconds at the default cost), so callers run
//! it off the async runtime. The member that receives a password hashes it before proposing:
//! the password itself never reaches the raft log, and every member stores the same hash.

/// Go's bcrypt bounds and default (etcd falls back to the default outside the bounds).
pub const MIN_COST: u32 = 4;
pub const MAX_COST: u32 = 31;
pub const DEFAULT_COST: u32 = 10;

/// `cost` if bcrypt accepts it, else the default, with etcd's warning.
pub fn checked_cost(cost: u32) -> u32 {
    if (MIN_COST..=MAX_COST).contains(&cost) {
        cost
    } else {
        tracing::warn!(
            min_cost = MIN_COST,
            max_cost = MAX_COST,
            default_cost = DEFAULT_COST,
            given_cost = cost,
            "use default bcrypt cost instead of the invalid given cost"
        );
        DEFAULT_COST
    }
}

pub fn hash(password: &str, cost: u32) -> Vec<u8> {
    match bcrypt::hash_with_result(password, cost) {
        Ok(parts) => parts.format_for_version(bcrypt::Version::TwoA).into_bytes(),
        // Only an out-of-range cost fails, and `checked_cost` rules that out.
        Err(e) => unreachable!("bcrypt at cost {cost}: {e}"),
    }
}

/// Whether `password` matches `hashed` (a hash that does not parse matches nothing).
pub fn verify(password: &str, hashed: &[u8]) -> bool {
    std::str::from_utf8(hashed).is_ok_and(|h| bcrypt::verify(password, h).unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_in_gos_form() {
        let h = hash("secret", MIN_COST);
        assert!(h.starts_with(b"$2a$04$"));
        assert!(verify("secret", &h));
        assert!(!verify("Secret", &h));
        assert!(!verify("secret", b"not a hash"));
    }

    #[test]
    fn out_of_range_costs_fall_back() {
        assert_eq!(checked_cost(3), DEFAULT_COST);
        assert_eq!(checked_cost(32), DEFAULT_COST);
        assert_eq!(checked_cost(4), 4);
    }
}
