/*  config_keys.h: the key table shared by the parser (config.c) and the
 *  table itself (config_keys.c).  Private to lib/.  */
#ifndef DG_CONFIG_KEYS_H
#define DG_CONFIG_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Section kinds, as a bit mask so that a key could serve several.  Every
 * [ROLE NAME] section is a stage's, whatever the role is called. */
enum {
	DG_SEC_CONTROLLER  = 1 << 0,
	DG_SEC_FABRIC      = 1 << 1,
	DG_SEC_SECURITY    = 1 << 2,
	DG_SEC_PIPELINE    = 1 << 3,
	DG_SEC_STAGES      = 1 << 4,
	DG_SEC_AUTOSCALE   = 1 << 5         /* [autoscale ROLE] */
};

typedef enum {
	DG_KT_INT,
	DG_KT_SIZE,        /* bytes; K/M/G/T suffixes, powers of 1024 */
	DG_KT_DURATION,    /* milliseconds; ms/s/m/h suffixes */
	DG_KT_FRACTION,    /* 0.875: stored as millionths in an int64 */
	DG_KT_BOOL,
	DG_KT_ENUM,        /* stored as int: index into `choices` */
	DG_KT_STR,
	DG_KT_PATH,
	DG_KT_ENDPOINT
} dg_key_type_t;

enum {
	DG_KF_REQUIRED = 1 << 0,
	DG_KF_RELOAD   = 1 << 1,
	/* The default is a format taking the role name ("ref-%s"), for the
	 * roles that have a reference stage; any other role must set it. */
	DG_KF_ROLEDEF  = 1 << 2
};

typedef struct {
	unsigned sections;
	const char *name;
	dg_key_type_t type;
	const char *def;
	int64_t min, max;
	unsigned flags;
	size_t offset;             /* into the section's conf struct */
	size_t size;               /* of a string field */
	const char *const *choices; /* DG_KT_ENUM: NULL-terminated */
	const char *help;
} dg_key_t;

extern const dg_key_t dg_config_keys[];
extern const size_t dg_config_nkeys;

#endif
