#ifdef __linux__
#define _GNU_SOURCE
#include "CPetrelLinux.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int cpetrel_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int cpetrel_epoll_add_oneshot(int epfd, int fd, uint64_t token) {
    struct epoll_event event = {0};
    event.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int cpetrel_epoll_add(int epfd, int fd, uint64_t token) {
    struct epoll_event event = {0};
    event.events = EPOLLIN;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int cpetrel_epoll_set_enabled(int epfd, int fd, uint64_t token, int enabled) {
    struct epoll_event event = {0};
    event.events = enabled ? EPOLLIN : 0;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &event);
}

int cpetrel_epoll_del(int epfd, int fd) {
    struct epoll_event event = {0};
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &event);
}

int cpetrel_epoll_wait(int epfd, uint64_t *tokens, int capacity, int timeout_ms) {
    struct epoll_event events[256];
    if (capacity > 256) capacity = 256;
    int count = epoll_wait(epfd, events, capacity, timeout_ms);
    for (int index = 0; index < count; index++) tokens[index] = events[index].data.u64;
    return count;
}

int cpetrel_accept(int fd) {
    return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int cpetrel_dup(int fd) {
    return fcntl(fd, F_DUPFD_CLOEXEC, 0);
}

int cpetrel_pipe(int fds[2]) {
    return pipe2(fds, O_CLOEXEC | O_NONBLOCK);
}

int cpetrel_malloc_trim(void) {
    return malloc_trim(0);
}
#endif
