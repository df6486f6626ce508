/* Stand-in for jamjam's echo-server:
 *   echo-server --port P --host H --delay MS --signaling-url ws://NAME:PORT --public-addr A
 * Echoes every UDP datagram on H:P back to its sender after MS milliseconds (as the real voice
 * echo test does), and keeps a WebSocket handshake with the signaling URL going, logging
 * "reached <url>" once it got 101, so the rehearsal can prove the bridge network and alias. */
#include "common.h"
#include <signal.h>
#include <poll.h>
#include <sys/time.h>

static int reach_signaling(const char *url) {
  char host[256], port[16] = "80";
  if (sscanf(url, "ws://%255[^:/]:%15[0-9]", host, port) < 1) return -1;
  int fd = open_socket(host, port, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  char req[512];
  snprintf(req, sizeof req,
           "GET / HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: cmVoZWFyc2FsLXN0YW5kaW4=\r\n\r\n",
           host, port);
  char buf[1024];
  int ok = write(fd, req, strlen(req)) > 0 && read_head(fd, buf, sizeof buf) > 0 &&
           strstr(buf, " 101 ") != NULL;
  close(fd);
  return ok ? 0 : -1;
}

static void on_term(int sig) {
  (void)sig;
  _exit(0);
}

int main(int argc, char **argv) {
  signal(SIGTERM, on_term);
  const char *port = opt(argc, argv, "--port", "5000");
  const char *host = opt(argc, argv, "--host", "0.0.0.0");
  long delay = atol(opt(argc, argv, "--delay", getenv("ECHO_DELAY_MS") ? getenv("ECHO_DELAY_MS") : "0"));
  const char *url = opt(argc, argv, "--signaling-url", NULL);
  int fd = open_socket(host, port, SOCK_DGRAM, 1);
  if (fd < 0) {
    say("echo-server: cannot bind udp %s:%s: %s", host, port, strerror(errno));
    return 1;
  }
  say("echo-server: udp %s:%s, delay %ld ms, public %s", host, port, delay,
      opt(argc, argv, "--public-addr", "unset"));
  int reached = url == NULL;
  time_t next_try = 0;
  for (;;) {
    if (!reached && time(NULL) >= next_try) {
      if (reach_signaling(url) == 0) {
        say("echo-server: reached %s", url);
        reached = 1;
      } else {
        say("echo-server: cannot reach %s yet", url);
        next_try = time(NULL) + 1;
      }
    }
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 500) <= 0) continue;
    char buf[2048];
    struct sockaddr_storage from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    if (n < 0) continue;
    /* Sequential on purpose: the stand-in answers probes, it is not a load test target. */
    if (delay > 0) usleep((useconds_t)(delay > 10000 ? 10000 : delay) * 1000);
    sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, len);
  }
}
