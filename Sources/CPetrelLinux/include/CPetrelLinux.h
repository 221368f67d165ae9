#ifndef C_PETREL_LINUX_H
#define C_PETREL_LINUX_H

// The few Linux calls the transport layer needs that the Glibc module does not export: epoll for the sockets
// of hibernating connections, accept4, and malloc_trim. Empty on other systems.

#ifdef __linux__
#include <stdint.h>

/// A new epoll instance (close-on-exec), or -1 with errno set.
int cpetrel_epoll_create(void);
/// Watches `fd` for readability, peer hang-up and errors, once (EPOLLONESHOT); `token` comes back with the event.
int cpetrel_epoll_add_oneshot(int epfd, int fd, uint64_t token);
/// Watches `fd` for readability, level-triggered (listening sockets, the wake-up pipe).
int cpetrel_epoll_add(int epfd, int fd, uint64_t token);
/// Stops or resumes watching a listening socket (events 0 while the process is out of descriptors).
int cpetrel_epoll_set_enabled(int epfd, int fd, uint64_t token, int enabled);
int cpetrel_epoll_del(int epfd, int fd);
/// Waits for up to `capacity` events; their tokens land in `tokens`. Returns the count, or -1 with errno set.
int cpetrel_epoll_wait(int epfd, uint64_t *tokens, int capacity, int timeout_ms);
/// A connection accepted non-blocking and close-on-exec, or -1 with errno set.
int cpetrel_accept(int fd);
/// A copy of `fd` (close-on-exec), or -1 with errno set.
int cpetrel_dup(int fd);
/// A non-blocking, close-on-exec pipe.
int cpetrel_pipe(int fds[2]);
/// Hands free memory back to the system; 1 when some was released.
int cpetrel_malloc_trim(void);
#endif

#endif
