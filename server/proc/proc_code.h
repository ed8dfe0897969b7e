/*
 * proc_code.h - loading a processor's code: a C shared object or a Lua
 * file, behind one descriptor (kappa_processor.h).
 *
 * A .lua file is copied to <code_dir>/<hash>/<file name> (so its errors
 * still name the file) and run from there; a .so is copied to a
 * content-addressed path (<code_dir>/<hash>.so) and
 * loaded from there with RTLD_NOW | RTLD_LOCAL, so a replaced file is a new
 * path and a library that a call may still be inside is never unloaded
 * under it: code objects are reference-counted and dlclose runs only when
 * the last reference goes. A .lua file gets the Lua adapter's descriptor.
 * The descriptor is copied min(size, sizeof): fields an older plugin does
 * not know stay NULL. Another ABI major version is refused with a message
 * naming both versions.
 */
#ifndef KP_PROC_CODE_H
#define KP_PROC_CODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kappa_processor.h"

#include "base/error.h"

struct kp_proc_code {
	struct kp_processor desc;   /* copied descriptor */
	char path[4096];            /* the source as given */
	char loaded_path[4096];     /* the copy that runs (the file itself
				       without a code_dir) */
	char lang[8];               /* "c" or "lua" */
	char hash[17];              /* 64-bit content hash, hex */
	void *dl;                   /* dlopen handle, NULL for Lua */
	int refs;                   /* references; freed at 0 */
};

/*
 * Loads the code at path (".so" or ".lua" by extension). code_dir is where
 * .so copies go (created if missing; NULL loads in place, for the offline
 * runner). Returns 0 and *out (one reference), or an error with err naming
 * the file.
 */
int kp_proc_code_load(const char *path, const char *code_dir,
		      struct kp_proc_code **out, struct kp_error *err);

/*
 * As kp_proc_code_load, but the code is only copied and hashed, never
 * opened: kappad stages code this way and its worker process loads the
 * copy (loaded_path), so nothing of a plugin ever runs inside kappad.
 * desc stays zeroed.
 */
int kp_proc_code_stage(const char *path, const char *code_dir,
		       struct kp_proc_code **out, struct kp_error *err);

/* What code a server will load (docs/SECURITY.md, "Processor code"). */
struct kp_proc_code_policy {
	bool native_plugins;        /* .so files may be loaded */
	char root[4096];            /* code a client names must resolve
				       under this directory (its real path);
				       "" = anywhere */
};

/*
 * Whether policy allows loading path: 0, or KP_EFORBIDDEN with err saying
 * which setting refuses it. A .so needs native_plugins; when named by a
 * client (from_client), a path must also lie under root once symlinks
 * are followed. Code the server restores from its own copies is only
 * checked for its kind.
 */
int kp_proc_code_allowed(const struct kp_proc_code_policy *policy,
			 const char *path, bool from_client,
			 struct kp_error *err);

/* Takes / drops a reference (the last one unloads). NULL is a no-op. */
void kp_proc_code_ref(struct kp_proc_code *code);
void kp_proc_code_unref(struct kp_proc_code *code);

/* 64-bit FNV-1a of a file's bytes as 16 hex digits. Returns 0 or -errno. */
int kp_proc_code_hash_file(const char *path, char hex[17]);

#endif
