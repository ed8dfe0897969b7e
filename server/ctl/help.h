/*
 * help.h - kappactl's help: one table of commands (help.c), each with its
 * usage, a one-line summary, what it does, its flags (one line each) and
 * examples. `kappactl --help` prints the whole text from it, and
 * `kappactl help CMD` / `kappactl CMD --help` one entry, so the two cannot
 * drift apart.
 *
 * Access pattern: read-only lookups and printing; no allocation.
 */
#ifndef KP_CTL_HELP_H
#define KP_CTL_HELP_H

#include <stddef.h>
#include <stdio.h>

/* One command of kappactl. Every text is static, lines end in '\n' except
 * the last. */
struct kp_ctl_help_cmd {
	const char *name;     /* its words: "run", "topic create" */
	const char *usage;    /* "topic create NAME [--partitions N] ...";
				 continuation lines indented relative to
				 the name's start */
	const char *summary;  /* one line: what it is for */
	const char *about;    /* what it does and prints, unindented lines */
	const char *flags;    /* "--flag VALUE\tone line" per line; NULL:
				 none but the global ones */
	const char *example;  /* command lines, each "kappactl ..." */
};

/* The commands, in the order the full text lists them; *n gets the count. */
const struct kp_ctl_help_cmd *kp_ctl_help_table(size_t *n);

/* Writes the full text (`kappactl --help`) to f. */
void kp_ctl_help_all(FILE *f);

/*
 * 1 when word is the first word of two-word commands ("topic", "proc",
 * "group", "view"), else 0.
 */
int kp_ctl_help_is_group(const char *word);

/*
 * Writes the help of the command named by words[0..nwords) to f: one
 * entry's usage, text, flags and examples, or for a group word alone
 * ("topic") the list of its commands. The words must name a command
 * exactly (one word, or a group word and one of its verbs). Returns 0, or
 * -ENOENT when no command has that name (nothing written).
 */
int kp_ctl_help_command(FILE *f, const char *const *words, int nwords);

/*
 * `kappactl help [WORDS]` (argv: the words after "help"): the full text on
 * out without words (or with --help, -h: the help of help), else the help
 * of the command they name. Returns the exit status: 0, or 2 after one
 * line on err when no command has that name.
 */
int kp_ctl_help_run(FILE *out, FILE *err, int argc, char *const *argv);

/* 1 when --help or -h is among a verb's arguments argv[0..argc) before
 * "--", else 0. */
int kp_ctl_help_asked(int argc, char *const *argv);

/*
 * `kappactl VERB ARGS... --help` (argv[0] the verb): kp_ctl_help_run of
 * VERB, or of VERB and ARGS[0] when VERB is a group word and ARGS[0] is not
 * an option ("topic create --help", "proc reload wc -h").
 */
int kp_ctl_help_for_verb(FILE *out, FILE *err, int argc, char *const *argv);

#endif
