/* Recipe files: `--config RECIPE.json` holds a command's options as a JSON object whose keys are
 * the long option names ("lr", "lr-schedule" or "lr_schedule", "no-shuffle": true, "betas":
 * [0.9, 0.999]). The recipe becomes command-line arguments placed before the real ones, so a
 * flag given on the command line overrides the file (the parser keeps the last value). */
#ifndef KD_RECIPE_H
#define KD_RECIPE_H

#include <getopt.h>

#include "runtime/error.h"

/* Finds `--config FILE` (or --config=FILE) in argv, reads FILE and returns in *out_argv a new
 * argument vector: argv[0], the recipe's options, then argv[1..] without --config. opts is the
 * command's option table; a key that names no option, or a value of the wrong type (a string
 * for a flag without argument, an object, ...), fails naming the file and the key. Without
 * --config, *out_argv is a copy of argv. Free with kd_recipe_free. */
int kd_recipe_expand(int argc, char **argv, const struct option *opts, int *out_argc,
                     char ***out_argv, kd_error *err);
void kd_recipe_free(int argc, char **argv);

#endif
