/* SIGINT and SIGTERM during training: the first one asks the run to stop after its current
 * step (the run polls kd_stop_requested, writes a checkpoint and exits 128 + signal); a second
 * one ends the process at once. */
#ifndef KD_SIGNALS_H
#define KD_SIGNALS_H

/* Installs the handlers for SIGINT and SIGTERM and clears any earlier request. */
void kd_stop_signals_install(void);
/* Puts back the handlers that were there before kd_stop_signals_install. */
void kd_stop_signals_restore(void);
/* The signal number that asked the run to stop, or 0. */
int kd_stop_requested(void);

#endif
