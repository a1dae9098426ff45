/* Recipe files: `--config RECIPE.json` holds a command's options as a JSON object whose keys are
 * the long option names ("lr", "lr-schedule" or "lr_schedule", "no-shuffle": true, "betas":
 * [0.9, 0.999]). The recipe becomes command-line arguments placed before the real ones, so a
 * flag given on the command line overrides the file (the parser keeps the last value). Paths in
 * a recipe are taken as given, like flags: relative ones from the current directory. */
#ifndef KD_RECIPE_H
#define KD_RECIPE_H

#include <getopt.h>

#include "runtime/error.h"

/* Finds `--config FILE` (or --config=FILE) in argv, reads FILE and returns in *out_argv a new
 * argument vector: argv[0], the recipe's options (*recipe_argc arguments), then argv[1..]
 * without --config; *config_path is FILE (pointing into argv) or NULL. --config given twice
 * is refused. The keys force, resume and run-dir are refused: they say what to do with
 * a run directory, not how to train, and belong on the command line.
 *   opts       the command's option table: every key must name one of its long options
 *              (except config and help);
 *   text_keys  NULL-terminated names of the options whose values are text (paths, names);
 *              "betas" takes a list of two numbers; every other option with an argument takes
 *              a JSON number, and one without an argument true or false;
 *   inline_model  set to the unformatted JSON text of a "model" key that holds a spec object
 *              instead of a path (free() it), else NULL.
 * A key that names no option or a value of the wrong type fails naming the file and the key.
 * Without --config, *out_argv is a copy of argv. Free it with kd_recipe_free. */
int kd_recipe_expand(int argc, char **argv, const struct option *opts,
                     const char *const *text_keys, int *out_argc, char ***out_argv,
                     int *recipe_argc, const char **config_path, char **inline_model,
                     kd_error *err);
void kd_recipe_free(int argc, char **argv);

#endif
