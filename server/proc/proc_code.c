/*
 * proc_code.c - loading a processor's code: a shared object copied to a
 * content-addressed path and dlopen'ed from there, or a Lua file behind the
 * Lua adapter's descriptor.
 *
 * Access pattern: rare (a load or reload command); reads the whole file,
 * hashes it (64-bit FNV-1a), and for a .so writes <code_dir>/<hash>.so
 * through a temporary name and rename(2), so a reader never sees a partial
 * copy and a replaced source file always loads from a new path.
 */
#include "proc_code.h"

#include <stdbool.h>

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "luahost/lua_adapter.h"
#include "luahost/lua_sandbox.h"

#define FNV64_OFFSET 0xcbf29ce484222325ull
#define FNV64_PRIME 0x100000001b3ull

static uint64_t fnv1a64(uint64_t h, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)p[i];
		h *= FNV64_PRIME;
	}
	return h;
}

static void hex64(uint64_t h, char hex[17])
{
	snprintf(hex, 17, "%016llx", (unsigned long long)h);
}

int kp_proc_code_hash_file(const char *path, char hex[17])
{
	uint64_t h = FNV64_OFFSET;
	char chunk[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			int rc = -errno;

			if (rc == -EINTR)
				continue;
			close(fd);
			return rc;
		}
		h = fnv1a64(h, chunk, (size_t)n);
	}
	close(fd);
	hex64(h, hex);
	return 0;
}

/* Reads a whole file into a kp_malloc'd buffer. Returns 0 or -errno. */
static int read_all(const char *path, char **out, size_t *len)
{
	struct stat st;
	char *data = NULL;
	size_t cap, n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	cap = (size_t)st.st_size + 1;
	data = kp_malloc(cap);
	if (data == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	while (n < cap) {
		ssize_t r = read(fd, data + n, cap - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n == cap)
		rc = -EAGAIN;  /* the file grew while we read it */
out:
	close(fd);
	if (rc != 0) {
		kp_free(data);
		return rc;
	}
	*out = data;
	*len = n;
	return 0;
}

static int write_all(int fd, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, data, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		data += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Creates dir and its missing parents (mode 0700: the copies are the
 * server's alone). Returns 0 or -errno.
 */
static int make_dirs(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(path))
		return -ENAMETOOLONG;
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0700) != 0 && errno != EEXIST)
			return -errno;
		path[i] = i == len ? '\0' : '/';
	}
	return 0;
}

/*
 * Makes <code_dir>/<name> hold data, unless it already exists (the name
 * starts with the content's hash: <hash>.so, or <hash>/<file>.lua so that
 * Lua errors keep naming the file). Written to a temporary name, then
 * renamed.
 */
static int store_copy(const char *code_dir, const char *name, const char *data,
		      size_t len, char *dst, size_t dst_size,
		      struct kp_error *err)
{
	static unsigned counter;
	char tmp[4200], dir[4200];
	const char *slash;
	int fd, rc;

	if ((size_t)snprintf(dst, dst_size, "%s/%s", code_dir, name) >=
	    dst_size)
		return kp_error_set(err, -ENAMETOOLONG, "%s: path too long",
				    code_dir);
	slash = strrchr(dst, '/');
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - dst), dst);
	rc = make_dirs(dir);
	if (rc != 0)
		return kp_error_set(err, rc, "%s: cannot create: %s", dir,
				    kp_error_text(rc));
	if (access(dst, R_OK) == 0)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s/.tmp.%ld.%u", dir, (long)getpid(),
		 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		return kp_error_set(err, rc, "%s: cannot write: %s", tmp,
				    kp_error_text(rc));
	}
	rc = write_all(fd, data, len);
	if (rc == 0 && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, dst) != 0)
		rc = -errno;
	if (rc != 0) {
		unlink(tmp);
		return kp_error_set(err, rc, "%s: cannot write: %s", dst,
				    kp_error_text(rc));
	}
	return 0;
}

/* Copies the descriptor min(size, sizeof) after checking its ABI version. */
static int take_descriptor(struct kp_proc_code *code,
			   const struct kp_processor *d, struct kp_error *err)
{
	uint32_t major, minor;
	size_t n;

	if (d == NULL)
		return kp_error_set(err, KP_ECONFIG,
				    "%s: %s() returned no descriptor",
				    code->path, KP_PROC_ENTRY);
	major = d->abi_version >> 16;
	minor = d->abi_version & 0xffff;
	if (major != KP_PROC_ABI_MAJOR)
		return kp_error_set(err, KP_ECONFIG,
				    "%s: built for processor ABI %u.%u, this server speaks %u.%u",
				    code->path, major, minor,
				    (unsigned)KP_PROC_ABI_MAJOR,
				    (unsigned)KP_PROC_ABI_MINOR);
	n = d->size < sizeof(code->desc) ? d->size : sizeof(code->desc);
	memset(&code->desc, 0, sizeof(code->desc));
	memcpy(&code->desc, d, n);
	code->desc.size = (uint32_t)n;
	if (code->desc.process == NULL)
		return kp_error_set(err, KP_ECONFIG,
				    "%s: the descriptor has no process callback",
				    code->path);
	return 0;
}

/*
 * dlerror()'s text without the leading "<path>: " of the copy it opened,
 * so that a client is told why the load failed, not where the server
 * keeps its code copies.
 */
static const char *without_path(const char *msg, const char *path)
{
	size_t n = strlen(path);

	if (msg == NULL)
		return "unknown error";
	if (strncmp(msg, path, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
		return msg + n + 2;
	return msg;
}

/*
 * The path to dlopen a .so in place: as given, with "./" in front of a bare
 * file name (dlopen would search the library path for it).
 */
static int in_place_path(struct kp_proc_code *code, struct kp_error *err)
{
	size_t len = strlen(code->path);
	size_t at = strchr(code->path, '/') == NULL ? 2 : 0;

	if (len + at >= sizeof(code->loaded_path))
		return kp_error_set(err, -ENAMETOOLONG, "%s: path too long",
				    code->path);
	memcpy(code->loaded_path, "./", at);
	memcpy(code->loaded_path + at, code->path, len + 1);
	return 0;
}

static int load_so(struct kp_proc_code *code, const char *code_dir,
		   bool open, struct kp_error *err)
{
	kp_proc_entry_fn entry;
	char *data = NULL;
	size_t len = 0;
	int rc;

	rc = read_all(code->path, &data, &len);
	if (rc != 0)
		return kp_error_set(err, rc, "%s: cannot read: %s", code->path,
				    kp_error_text(rc));
	hex64(fnv1a64(FNV64_OFFSET, data, len), code->hash);
	if (code_dir != NULL) {
		char name[64];

		snprintf(name, sizeof(name), "%s.so", code->hash);
		rc = store_copy(code_dir, name, data, len, code->loaded_path,
				sizeof(code->loaded_path), err);
	} else {
		rc = in_place_path(code, err);
	}
	kp_free(data);
	if (rc != 0 || !open)
		return rc;
	code->dl = dlopen(code->loaded_path, RTLD_NOW | RTLD_LOCAL);
	if (code->dl == NULL)
		return kp_error_set(err, KP_ECONFIG, "%s: cannot load: %s",
				    code->path,
				    without_path(dlerror(), code->loaded_path));
	*(void **)&entry = dlsym(code->dl, KP_PROC_ENTRY);
	if (entry == NULL)
		return kp_error_set(err, KP_ECONFIG,
				    "%s: does not export %s() (build with -fvisibility=hidden and mark it visible)",
				    code->path, KP_PROC_ENTRY);
	return take_descriptor(code, entry(), err);
}

/*
 * A file a client names must parse as Lua before kappad copies it; if
 * not: "syntax error: PATH:LINE: ...", PATH as the client gave it. What
 * the parser says quotes the text ("near 'root'"), so it is passed on
 * only when every user may read the file anyway; otherwise the client
 * learns the line, not the content (kappad may read files its client
 * cannot).
 */
static int check_lua_text(const char *path, const char *base,
			  const char *data, size_t len, struct kp_error *err)
{
	char msg[512];
	struct stat st;
	const char *line;

	if (kp_lua_check_syntax(base, data, len, msg, sizeof(msg)) == 0)
		return 0;
	/* The parser names the file by its base name: name the client's. */
	line = strncmp(msg, base, strlen(base)) == 0 &&
	       msg[strlen(base)] == ':' ? msg + strlen(base) + 1 : NULL;
	if (line == NULL || *line < '0' || *line > '9')
		line = NULL;
	if (line != NULL && stat(path, &st) == 0 &&
	    (st.st_mode & S_IROTH) != 0)
		return kp_error_set(err, KP_EBADREQUEST, "syntax error: %s:%s",
				    path, line);
	if (line != NULL)
		return kp_error_set(err, KP_EBADREQUEST,
				    "syntax error: %s:%d: not a Lua processor: it does not parse as Lua (line %d); its text is not quoted since not every user may read the file",
				    path, atoi(line), atoi(line));
	if (stat(path, &st) == 0 && (st.st_mode & S_IROTH) != 0)
		return kp_error_set(err, KP_EBADREQUEST, "%s", msg);
	return kp_error_set(err, KP_EBADREQUEST,
			    "%s: not a Lua processor: it is not Lua source text",
			    path);
}

/*
 * A .lua file: hashed, and with code_dir copied to <hash>/<file name>
 * there, so the processor keeps running the text it was given (across
 * restarts too) whatever happens to the file afterwards.
 */
static int load_lua(struct kp_proc_code *code, const char *code_dir,
		    bool open, struct kp_error *err)
{
	const char *base = strrchr(code->path, '/');
	char *data = NULL, name[4200];
	size_t len = 0;
	int rc;

	rc = read_all(code->path, &data, &len);
	if (rc != 0)
		return kp_error_set(err, rc, "%s: cannot read: %s", code->path,
				    kp_error_text(rc));
	base = base ? base + 1 : code->path;
	if (code_dir != NULL) {
		rc = check_lua_text(code->path, base, data, len, err);
		if (rc != 0) {
			kp_free(data);
			return rc;
		}
	}
	hex64(fnv1a64(FNV64_OFFSET, data, len), code->hash);
	snprintf(name, sizeof(name), "%s/%s", code->hash, base);
	if (code_dir != NULL)
		rc = store_copy(code_dir, name, data, len, code->loaded_path,
				sizeof(code->loaded_path), err);
	else
		snprintf(code->loaded_path, sizeof(code->loaded_path), "%s",
			 code->path);
	kp_free(data);
	if (rc != 0 || !open)
		return rc;
	return take_descriptor(code, kp_lua_processor(), err);
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && strcmp(s + n - m, suffix) == 0;
}

static void code_free(struct kp_proc_code *code)
{
	if (code->dl != NULL)
		dlclose(code->dl);
	kp_free(code);
}

static int load(const char *path, const char *code_dir, bool open,
		struct kp_proc_code **out, struct kp_error *err)
{
	struct kp_proc_code *code;
	int rc;

	if (strlen(path) >= sizeof(code->path))
		return kp_error_set(err, -ENAMETOOLONG, "%.64s...: path too long",
				    path);
	if (!has_suffix(path, ".so") && !has_suffix(path, ".lua"))
		return kp_error_set(err, KP_ECONFIG,
				    "%s: unknown processor type (expected a .lua file or a .so shared object)",
				    path);
	code = kp_calloc(1, sizeof(*code));
	if (code == NULL)
		return kp_error_set(err, -ENOMEM, "%s: out of memory", path);
	memcpy(code->path, path, strlen(path) + 1);
	code->refs = 1;
	if (has_suffix(path, ".so")) {
		memcpy(code->lang, "c", 2);
		rc = load_so(code, code_dir, open, err);
	} else {
		memcpy(code->lang, "lua", 4);
		rc = load_lua(code, code_dir, open, err);
	}
	if (rc != 0) {
		code_free(code);
		return rc;
	}
	*out = code;
	return 0;
}

int kp_proc_code_load(const char *path, const char *code_dir,
		      struct kp_proc_code **out, struct kp_error *err)
{
	return load(path, code_dir, true, out, err);
}

int kp_proc_code_stage(const char *path, const char *code_dir,
		       struct kp_proc_code **out, struct kp_error *err)
{
	return load(path, code_dir, false, out, err);
}

int kp_proc_code_allowed(const struct kp_proc_code_policy *policy,
			 const char *path, bool from_client,
			 struct kp_error *err)
{
	char real[PATH_MAX];
	size_t n = strlen(policy->root);

	if (has_suffix(path, ".so") && !policy->native_plugins)
		return kp_error_set(err, KP_EFORBIDDEN,
				    "%s: native .so plugins are off on this server (native_plugins = on in its config allows them)",
				    path);
	if (!from_client || n == 0)
		return 0;
	if (realpath(path, real) == NULL)
		return kp_error_set(err, -errno, "%s: cannot read: %s", path,
				    kp_error_text(-errno));
	if (strncmp(real, policy->root, n) != 0 || real[n] != '/')
		return kp_error_set(err, KP_EFORBIDDEN,
				    "%s is not in processors_dir (%s): with tokens configured, processor code is read only from there",
				    path, policy->root);
	return 0;
}

void kp_proc_code_ref(struct kp_proc_code *code)
{
	if (code != NULL)
		__atomic_add_fetch(&code->refs, 1, __ATOMIC_RELAXED);
}

void kp_proc_code_unref(struct kp_proc_code *code)
{
	if (code == NULL)
		return;
	if (__atomic_sub_fetch(&code->refs, 1, __ATOMIC_ACQ_REL) == 0)
		code_free(code);
}
