/* SIGINT/SIGTERM handling for training runs. The handler only records the signal: everything
 * else (finishing the step, the checkpoint, the message) happens in the step loop, where it is
 * safe. A second signal while the first is being handled exits at once. */
#include "train/signals.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;
static struct sigaction saved_int, saved_term;
static int installed;

static void on_stop_signal(int sig) {
  if (stop_signal) _exit(128 + sig); /* the user insists: no checkpoint, now */
  stop_signal = sig;
}

void kd_stop_signals_install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  /* Restart interrupted system calls: PoCL's and HDF5's I/O need not know about the signal. */
  sa.sa_flags = SA_RESTART;
  stop_signal = 0;
  sigaction(SIGINT, &sa, &saved_int);
  sigaction(SIGTERM, &sa, &saved_term);
  installed = 1;
}

void kd_stop_signals_restore(void) {
  if (!installed) return;
  sigaction(SIGINT, &saved_int, NULL);
  sigaction(SIGTERM, &saved_term, NULL);
  installed = 0;
}

int kd_stop_requested(void) { return stop_signal; }
