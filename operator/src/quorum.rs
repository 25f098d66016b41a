//! How many voters make a quorum: the one rule every decision about members (the planner,
//! the status, the disruption budget) counts by.

/// A majority of `voters`.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_majority() {
        assert_eq!([1, 2, 3, 4, 5, 7].map(super::quorum), [1, 2, 2, 3, 3, 4]);
    }
}
