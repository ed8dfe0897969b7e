/*
 * lua_adapter.h - the Lua implementation of the processor descriptor.
 *
 * Its init loads ctx->source (a Lua file) into a fresh sandboxed lua_State
 * (one per instance), calls the module's optional init(ctx), and keeps the
 * module's process function in a registry ref; process builds the record
 * table and calls it. Errors carry file:line and a traceback. Lua modules
 * that processors `require` come from the directory named by the
 * environment variable KAPPA_LUA_DIR, else the source tree's lua/.
 */
#ifndef KP_LUA_ADAPTER_H
#define KP_LUA_ADAPTER_H

#include "kappa_processor.h"

/* The descriptor (static; never NULL). */
const struct kp_processor *kp_lua_processor(void);

#endif
