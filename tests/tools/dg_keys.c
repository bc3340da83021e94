/*  dg_keys.c: print the configuration key table, one key a line
 *  (section, name, type, default, range, reload, required), for the man page check.  */
#include <stdio.h>

#include "config.h"

int
main(void)
{
	for (size_t i = 0; i < dg_config_key_count(); i++) {
		const dg_config_keyinfo_t *k = dg_config_key_at(i);
		printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k->section, k->name,
		    k->type, *k->def ? k->def : "-", *k->range ? k->range : "-",
		    k->reloadable ? "reload" : "restart",
		    k->required ? "required" : "optional");
	}
	return 0;
}
