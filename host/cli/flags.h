/* Number parsing for command-line flags: each failure is a usage error naming the flag. */
#ifndef KD_FLAGS_H
#define KD_FLAGS_H

#include <getopt.h>
#include <stdint.h>

/* Returned by kd_getopt after it printed a usage error about an option's value. */
#define KD_FLAG_BAD_VALUE '!'

/* getopt_long over the command's long options (no short ones), which also refuses an
 * abbreviated option name (--epoch for --epochs) and a value that is empty or is another
 * option ("--out --quiet": a forgotten value): it prints the usage error naming the option and
 * returns KD_FLAG_BAD_VALUE. Otherwise as getopt_long. */
int kd_getopt(const char *command, int argc, char **argv, const struct option *opts);

/* Parse `text` for flag `flag` of `command`; range is inclusive unless stated. Return 0, or
 * print "kdcl: error: ..." and return KD_EXIT_USAGE. */
int kd_flag_int64(const char *command, const char *flag, const char *text, int64_t min,
                  int64_t max, int64_t *out);
int kd_flag_double(const char *command, const char *flag, const char *text, double min,
                   double max, double *out);
/* Like kd_flag_double but min is exclusive: "must be > min". */
int kd_flag_positive(const char *command, const char *flag, const char *text, double max,
                     double *out);

#endif
