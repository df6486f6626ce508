/* Generic stand-in for an image the rehearsal has no specific stand-in for (a database, a web
 * app): listens on every TCP port listed in JAMJAM_STANDIN_TCP and every UDP port in
 * JAMJAM_STANDIN_UDP (comma separated, taken from the container's ports and healthcheck),
 * answers TCP with a one-line HTTP 200 and UDP by echoing, and otherwise sleeps. */
#include "common.h"
#include <poll.h>
#include <signal.h>

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

int main(void) {
  signal(SIGTERM, on_term);
  struct pollfd fds[64];
  int types[64], count = 0;
  const char *lists[2] = {getenv("JAMJAM_STANDIN_TCP"), getenv("JAMJAM_STANDIN_UDP")};
  signal(SIGPIPE, SIG_IGN);
  for (int l = 0; l < 2; l++) {
    if (!lists[l]) continue;
    char copy[512];
    snprintf(copy, sizeof copy, "%s", lists[l]);
    for (char *save, *p = strtok_r(copy, ",", &save); p && count < 64; p = strtok_r(NULL, ",", &save)) {
      int type = l == 0 ? SOCK_STREAM : SOCK_DGRAM;
      int fd = open_socket("0.0.0.0", p, type, 1);
      if (fd < 0 || (type == SOCK_STREAM && listen(fd, 16) < 0)) {
        say("standin: cannot listen on %s/%s: %s", p, l ? "udp" : "tcp", strerror(errno));
        return 1;
      }
      say("standin: listening on %s/%s", p, l ? "udp" : "tcp");
      fds[count].fd = fd;
      fds[count].events = POLLIN;
      types[count++] = type;
    }
  }
  for (;;) {
    if (count == 0) {
      pause();
      continue;
    }
    if (poll(fds, (nfds_t)count, -1) <= 0) continue;
    for (int i = 0; i < count; i++) {
      if (!(fds[i].revents & POLLIN)) continue;
      char buf[2048];
      if (types[i] == SOCK_STREAM) {
        int c = accept(fds[i].fd, NULL, NULL);
        if (c < 0) continue;
        const char *reply = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        (void)!write(c, reply, strlen(reply));
        close(c);
      } else {
        struct sockaddr_storage from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(fds[i].fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n > 0) sendto(fds[i].fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
      }
    }
  }
}
