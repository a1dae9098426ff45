/* Strict number parsing for flags: the whole text must be a number within range. */
#include "cli/flags.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int kd_getopt(const char *command, int argc, char **argv, const struct option *opts) {
  int index = -1, at = optind ? optind : 1;
  int c = getopt_long(argc, argv, "", opts, &index);
  if (c == -1 || c == '?' || index < 0) return c;
  /* getopt_long also takes unambiguous prefixes (--epoch for --epochs); recipes cannot, and a
   * prefix that a later option makes ambiguous would break scripts: names are exact. */
  while (at < argc && strncmp(argv[at], "--", 2)) at++; /* non-options are permuted past */
  if (at < argc) {
    size_t len = strlen(opts[index].name);
    const char *given = argv[at] + 2;
    if (strncmp(given, opts[index].name, len) || (given[len] && given[len] != '=')) {
      kd_cli_usage_error(command, "unknown option '%.*s' (did you mean --%s?)",
                         (int)strcspn(argv[at], "="), argv[at], opts[index].name);
      return KD_FLAG_BAD_VALUE;
    }
  }
  if (opts[index].has_arg != required_argument) return c;
  if (!*optarg) {
    kd_cli_usage_error(command, "--%s expects a value, got an empty one", opts[index].name);
    return KD_FLAG_BAD_VALUE;
  }
  if (!strncmp(optarg, "--", 2)) {
    kd_cli_usage_error(command, "--%s expects a value, got the option '%s' (value missing?)",
                       opts[index].name, optarg);
    return KD_FLAG_BAD_VALUE;
  }
  return c;
}

/* Plain decimal numbers only: strtod alone would also take " 5", "0x10", "inf" and "nan". */
static int plain_number(const char *text) {
  if (!*text || isspace((unsigned char)text[0])) return 0;
  for (const char *p = text; *p; p++)
    if (!isdigit((unsigned char)*p) && !strchr("+-.eE", *p)) return 0;
  return 1;
}

int kd_flag_int64(const char *command, const char *flag, const char *text, int64_t min,
                  int64_t max, int64_t *out) {
  char *end;
  if (!plain_number(text) || strpbrk(text, ".eE"))
    return kd_cli_usage_error(command, "%s expects an integer in [%lld, %lld], got '%s'", flag,
                              (long long)min, (long long)max, text);
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (errno || end == text || *end || v < min || v > max)
    return kd_cli_usage_error(command, "%s expects an integer in [%lld, %lld], got '%s'", flag,
                              (long long)min, (long long)max, text);
  *out = v;
  return 0;
}

int kd_flag_double(const char *command, const char *flag, const char *text, double min,
                   double max, double *out) {
  char *end;
  if (!plain_number(text))
    return kd_cli_usage_error(command, "%s expects a number in [%g, %g], got '%s'", flag, min,
                              max, text);
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !isfinite(v) || v < min || v > max)
    return kd_cli_usage_error(command, "%s expects a number in [%g, %g], got '%s'", flag, min,
                              max, text);
  *out = v;
  return 0;
}

int kd_flag_positive(const char *command, const char *flag, const char *text, double max,
                     double *out) {
  char *end;
  if (!plain_number(text))
    return kd_cli_usage_error(command, "%s expects a number > 0 (at most %g), got '%s'", flag,
                              max, text);
  errno = 0;
  double v = strtod(text, &end);
  if (errno || end == text || *end || !isfinite(v) || v <= 0 || v > max)
    return kd_cli_usage_error(command, "%s expects a number > 0 (at most %g), got '%s'", flag,
                              max, text);
  *out = v;
  return 0;
}
