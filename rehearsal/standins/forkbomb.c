/* A bounded fork bomb for the pids-limit proof: forks sleeping children until fork fails or
 * MAX (argv[1], default 4096) is reached, prints how many it got and why it stopped, then
 * kills them all and exits. It never loops unbounded, so a missing limit costs MAX processes
 * for a few seconds, not the machine. */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

int main(int argc, char **argv) {
  long max = argc > 1 ? atol(argv[1]) : 4096;
  long made = 0;
  int why = 0;
  setpgid(0, 0);
  while (made < max) {
    pid_t pid = fork();
    if (pid < 0) {
      why = errno;
      break;
    }
    if (pid == 0) {
      sleep(30);
      _exit(0);
    }
    made++;
  }
  printf("forked %ld of %ld: %s\n", made, max, why ? strerror(why) : "no limit hit");
  fflush(stdout);
  signal(SIGTERM, SIG_IGN);
  kill(0, SIGTERM);
  while (wait(NULL) > 0) {
  }
  return why ? 0 : 3;
}
