//! `ipvs_strerror`: the text ipvsadm prints for a kernel (here: daemon) error, which depends
//! on the operation as well as on the errno.

use crate::proto::Errno;

/// The libipvs call that failed (`ipvs_func`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    AddService,
    EditService,
    DelService,
    ZeroService,
    AddDest,
    EditDest,
    DelDest,
    StartDaemon,
    StopDaemon,
    GetService,
    AddLaddr,
    DelLaddr,
    /// DPVS's access-list calls (`dpvs_add_blklst` ...).
    AddBlklst,
    DelBlklst,
    AddWhtlst,
    DelWhtlst,
    GetAccess,
    /// Flush, timeouts, info, connections: only the generic texts apply.
    Other,
}

/// libipvs 1.31's table, then `strerror(errno)` (glibc texts).
pub fn ipvs_strerror(op: Op, errno: Errno) -> &'static str {
    use Errno::*;
    use Op::*;
    match (op, errno) {
        (AddService, Eexist) => "Service already exists",
        (AddService | EditService, Enoent) => "Scheduler or persistence engine not found",
        (EditService | DelService | ZeroService | GetService, Esrch) => "No such service",
        (AddDest | EditDest | DelDest | AddLaddr | DelLaddr, Esrch) => "Service not defined",
        (AddBlklst | DelBlklst | AddWhtlst | DelWhtlst | GetAccess, Esrch) => "Service not defined",
        (AddBlklst, Eexist) => "blacklist address already exists",
        (AddWhtlst, Eexist) => "whitelist address already exists",
        // DPVS's libipvs has this text for both lists.
        (DelBlklst | DelWhtlst, Enoent) => "No such deny address",
        (AddDest, Eexist) => "Destination already exists",
        (EditDest | DelDest, Enoent) => "No such destination",
        (StartDaemon, Eexist) => "Daemon has already run",
        (StopDaemon, Esrch) => "No daemon is running",
        (_, Eperm) => "Permission denied (you must be root)",
        (_, Einval) => {
            "Invalid operation.  Possibly wrong module version, address not unicast, ..."
        }
        (_, Enomem) => "Memory allocation problem",
        (_, Eafnosupport) => "Operation not supported with specified address family",
        (_, Eexist) => "File exists",
        (_, Enoent) => "No such file or directory",
        (_, Esrch) => "No such process",
        (_, Eopnotsupp) => "Operation not supported",
        (_, Erange) => "Numerical result out of range",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_decides_the_text() {
        assert_eq!(
            ipvs_strerror(Op::AddService, Errno::Eexist),
            "Service already exists"
        );
        assert_eq!(
            ipvs_strerror(Op::DelService, Errno::Esrch),
            "No such service"
        );
        assert_eq!(
            ipvs_strerror(Op::AddDest, Errno::Esrch),
            "Service not defined"
        );
        assert_eq!(
            ipvs_strerror(Op::AddDest, Errno::Eexist),
            "Destination already exists"
        );
        assert_eq!(
            ipvs_strerror(Op::DelDest, Errno::Enoent),
            "No such destination"
        );
        assert_eq!(ipvs_strerror(Op::EditService, Errno::Eexist), "File exists");
        // ERANGE (`-y` above `-x`) has no libipvs text: strerror's.
        assert_eq!(
            ipvs_strerror(Op::AddDest, Errno::Erange),
            "Numerical result out of range"
        );
        assert_eq!(
            ipvs_strerror(Op::AddService, Errno::Esrch),
            "No such process"
        );
        assert_eq!(
            ipvs_strerror(Op::Other, Errno::Eperm),
            "Permission denied (you must be root)"
        );
    }

    /// Every row of the reference's `ipvs_strerror` table (docs/ipvsadm-compat.md section 5.5).
    #[test]
    fn the_whole_reference_table() {
        let rows: &[(Op, Errno, &str)] = &[
            (Op::AddService, Errno::Eexist, "Service already exists"),
            (
                Op::AddService,
                Errno::Enoent,
                "Scheduler or persistence engine not found",
            ),
            (
                Op::EditService,
                Errno::Enoent,
                "Scheduler or persistence engine not found",
            ),
            (Op::EditService, Errno::Esrch, "No such service"),
            (Op::ZeroService, Errno::Esrch, "No such service"),
            (Op::EditDest, Errno::Esrch, "Service not defined"),
            (Op::DelDest, Errno::Esrch, "Service not defined"),
            (Op::AddDest, Errno::Eexist, "Destination already exists"),
            (Op::EditDest, Errno::Enoent, "No such destination"),
            (Op::StartDaemon, Errno::Eexist, "Daemon has already run"),
            (Op::StopDaemon, Errno::Esrch, "No daemon is running"),
            (
                Op::AddDest,
                Errno::Eperm,
                "Permission denied (you must be root)",
            ),
            (
                Op::AddService,
                Errno::Einval,
                "Invalid operation.  Possibly wrong module version, address not unicast, ...",
            ),
            (Op::Other, Errno::Enomem, "Memory allocation problem"),
            (
                Op::AddService,
                Errno::Eafnosupport,
                "Operation not supported with specified address family",
            ),
        ];
        for (op, errno, text) in rows {
            assert_eq!(ipvs_strerror(*op, *errno), *text, "{op:?} {errno:?}");
        }
    }
}
