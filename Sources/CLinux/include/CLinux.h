#ifndef DISKVAULT_CLINUX_H
#define DISKVAULT_CLINUX_H
#include <sys/types.h>

/// lseek(fd, offset, SEEK_DATA); -1 with errno set on failure (ENXIO past the last data).
off_t dv_seek_data(int fd, off_t offset);
/// lseek(fd, offset, SEEK_HOLE).
off_t dv_seek_hole(int fd, off_t offset);
/// syncfs(fd): flush the whole file system holding fd.
int dv_syncfs(int fd);
/// renameat2(..., RENAME_NOREPLACE): fails with EEXIST when `to` exists.
int dv_rename_noreplace(int fromdir, const char *from, int todir, const char *to);
/// posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL).
int dv_fadvise_sequential(int fd);
/// Size in bytes of a block device (BLKGETSIZE64).
int dv_block_device_size(int fd, unsigned long long *size);
/// sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE): start writeback now, without waiting.
int dv_start_writeback(int fd, long long offset, long long length);
/// memfd_create(name, MFD_CLOEXEC): an anonymous file in memory (fuzzing feeds parsers through one).
int dv_memfd(const char *name);
/// The O_DIRECT open flag (needs _GNU_SOURCE, which Glibc's module does not define).
int dv_o_direct(void);
/// Files to remove if the process is stopped by SIGINT, SIGTERM or SIGHUP (a restore's temporary disk, a lock).
/// Register returns a slot (or -1 when all are in use); the handler unlinks every registered path, then lets the
/// signal take its default action. Install once.
int dv_cleanup_register(const char *path);
void dv_cleanup_unregister(int slot);
void dv_cleanup_install(void);
/// While deferral is on (calls nest), the first SIGINT/SIGTERM/SIGHUP is only recorded, for the run to unwind
/// and tear down what it set up elsewhere (a qemu's backup job); a second one acts at once.
void dv_cleanup_defer(int on);
/// The signal recorded while deferred, or 0.
int dv_cleanup_pending(void);
/// Once deferral is off: acts on the recorded signal (removes the registered paths, dies of it); else returns.
void dv_cleanup_raise_pending(void);
/// The signal recorded while deferred (0: none), forgotten: for a run that a signal ends normally (a server).
int dv_cleanup_take_pending(void);
/// Takes an open-file-description lock (F_OFD_SETLK, no wait) on `length` bytes at `start`: shared (read) or
/// exclusive (write). 0, or -1 with errno (EAGAIN: a conflicting lock is held).
int dv_ofd_lock(int fd, int shared, long long start, long long length);
/// Whether a lock of the asked type (write when `exclusive`) on the bytes would conflict with one held by another
/// open file description (F_OFD_GETLK): 1 and the holder's type (F_RDLCK 0, F_WRLCK 1) in *held, 0 when none,
/// -1 with errno.
int dv_ofd_conflict(int fd, int exclusive, long long start, long long length, int *held);
/// Zeroes `length` bytes at `offset` of a block device: punched out (unmapped where the device can, so thin
/// volumes stay thin), else BLKZEROOUT. 0, or -1 with errno.
int dv_block_zeroout(int fd, unsigned long long offset, unsigned long long length);
/// O_EXCL for a block device: fails with EBUSY when it is mounted, a device-mapper target or another O_EXCL
/// opener holds it.
int dv_o_excl(void);
/// A connected AF_UNIX stream socket to `path` (close-on-exec), or -1 with errno (ENAMETOOLONG: the path does
/// not fit a socket address).
int dv_unix_connect(const char *path);
/// The pid of the process at the other end of a unix socket (SO_PEERCRED), or -1.
int dv_peer_pid(int fd);
/// A listening unix socket and a client already connected to it (both close-on-exec), made in a private folder
/// that is removed at once: the server later started on `listen_fd` finds its client waiting. 0, or -1 and errno.
int dv_activation_sockets(int *listen_fd, int *client_fd);
/// Starts argv[0] (an absolute path) with `listen_fd` as its socket-activated listener (fd 3, LISTEN_FDS=1,
/// LISTEN_PID), standard input /dev/null, no other descriptor of this process, and SIGTERM sent to it when this
/// process dies (even by SIGKILL). Returns the pid, or -1 and errno.
pid_t dv_spawn_activated(char *const argv[], int listen_fd);
/// A listening AF_UNIX stream socket bound at `path` (close-on-exec, mode 0600 before anyone can connect), or
/// -1 with errno (ENAMETOOLONG: the path does not fit a socket address; EADDRINUSE: something is there).
int dv_unix_listen(const char *path);
/// A listening TCP socket on the numeric IPv4 or IPv6 address `host` and `port` (0: any free port), with
/// SO_REUSEADDR, close-on-exec; the port bound in *bound. -1 with errno (EINVAL: `host` is not an address).
int dv_tcp_listen(const char *host, int port, int *bound);
/// Waits up to `timeout_ms` for a connection on `listen_fd`: the connected socket (close-on-exec, TCP_NODELAY
/// on TCP), -2 when none came in time (or a signal came), -1 with errno.
int dv_accept(int listen_fd, int timeout_ms);
/// Waits up to `timeout_ms` for a child `pid` to end, then kills it (SIGKILL) and reaps it. Its wait status, or -1.
int dv_wait_child(pid_t pid, int timeout_ms);
#endif
