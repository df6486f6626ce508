/* Shared by the stand-in binaries: small helpers for argument parsing and logging.
 * The stand-ins replace images no registry here can serve; they behave only as far as the
 * rehearsal checks (listening, answering, reaching their peers), and log what they did on
 * stdout, which Docker's json-file driver keeps like the real services' logs. Each exits
 * on SIGTERM: as a container's pid 1 it has no default action for it, and `docker stop` would
 * otherwise wait out its timeout. */
#ifndef STANDIN_COMMON_H
#define _GNU_SOURCE
#define STANDIN_COMMON_H
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

__attribute__((unused)) static void say(const char *fmt, ...) {
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  va_list ap;
  va_start(ap, fmt);
  printf("%s ", stamp);
  vprintf(fmt, ap);
  printf("\n");
  fflush(stdout);
  va_end(ap);
}

__attribute__((unused)) static const char *opt(int argc, char **argv, const char *name, const char *fallback) {
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  return fallback;
}

__attribute__((unused)) static int has_word(int argc, char **argv, const char *word) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], word) == 0) return 1;
  return 0;
}

/* host:port or [host]:port -> connected or bound socket. */
__attribute__((unused)) static int open_socket(const char *host, const char *port, int type, int bind_it) {
  struct addrinfo hints = {0}, *res, *ai;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = type;
  if (bind_it) hints.ai_flags = AI_PASSIVE;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc != 0) {
    errno = EHOSTUNREACH;
    return -1;
  }
  int fd = -1;
  for (ai = res; ai; ai = ai->ai_next) {
    fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind_it ? bind(fd, ai->ai_addr, ai->ai_addrlen) == 0
                : connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
      break;
    close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  return fd;
}

/* Reads until the end of the HTTP head (blank line) or the buffer is full. */
__attribute__((unused)) static ssize_t read_head(int fd, char *buf, size_t size) {
  size_t got = 0;
  while (got + 1 < size) {
    ssize_t n = read(fd, buf + got, size - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
    buf[got] = 0;
    if (strstr(buf, "\r\n\r\n")) break;
  }
  buf[got] = 0;
  return (ssize_t)got;
}
#endif
