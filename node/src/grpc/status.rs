//! THE table of etcd's errors at the edge: every failure a client can see (`EtcdError`, with
//! etcd's exact message) gets etcd's gRPC code here, and nowhere else.

use crate::error::EtcdError;
use tonic::{Code, Status};

/// etcd's gRPC code for an error.
pub fn code(e: &EtcdError) -> Code {
    use EtcdError::*;
    match e {
        EmptyKey | KeyNotFound | ValueProvided | LeaseProvided | TooManyOps | DuplicateKey | RequestTooLarge
        | BadMemberUrls | UserEmpty | RoleEmpty | AuthFailed | InvalidAuthMgmt | AuthOldRevision => {
            Code::InvalidArgument
        }
        Compacted | FutureRev | LeaseTtlTooLarge => Code::OutOfRange,
        LeaseExists | NotLeader | MemberExists | PeerUrlExists | NotEnoughStarted | MemberNotLearner
        | LearnerNotReady | TooManyLearners | BadLeaderTransferee | RootUserNotExist | RootRoleNotExist
        | UserAlreadyExist | UserNotFound | RoleAlreadyExist | RoleNotFound | RoleNotGranted | PermissionNotGranted
        | AuthNotEnabled => Code::FailedPrecondition,
        PermissionDenied => Code::PermissionDenied,
        InvalidAuthToken => Code::Unauthenticated,
        LeaseNotFound | MemberNotFound => Code::NotFound,
        TooManyRequests | NoSpace => Code::ResourceExhausted,
        NoLeader | Timeout | Stopped | NotSupportedForLearner | Unhealthy | LeaderTransferTimeout => Code::Unavailable,
        // etcd's election errors are plain Go errors: gRPC reports them as Unknown.
        Internal(_) | ElectionNoLeader | ElectionNotLeader | MissingLeaderKey | NoPasswordUser | VerifyOnly
        | AuthUnconverted(_) => Code::Unknown,
        Forwarded { code, .. } => Code::from_i32(*code),
    }
}

impl From<EtcdError> for Status {
    fn from(e: EtcdError) -> Status {
        Status::new(code(&e), e.to_string())
    }
}
