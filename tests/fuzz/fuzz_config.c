/*  fuzz_config.c: libFuzzer target for the INI configuration parser.
 *  Any input must give either a configuration or a list of errors, never
 *  a crash; an accepted one must print (-T) and read back the same.  */
#define _GNU_SOURCE
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static char *
s_dump(const dg_config_t *cfg, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	assert(f);
	dg_config_dump(cfg, f);
	fclose(f);
	/* The first line names the file; compare what follows it. */
	return text;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	char *text = malloc(size + 1);
	assert(text);
	memcpy(text, data, size);
	text[size] = '\0';

	dg_config_t *cfg = dg_config_parse_string("fuzz.ini", text);
	assert(cfg);
	if (dg_config_error_count(cfg) == 0) {
		size_t n1, n2;
		char *d1 = s_dump(cfg, &n1);
		dg_config_t *again = dg_config_parse_string("fuzz.ini", d1);
		assert(again);
		assert(dg_config_error_count(again) == 0);
		char *d2 = s_dump(again, &n2);
		assert(n1 == n2 && memcmp(d1, d2, n1) == 0);
		free(d1);
		free(d2);
		dg_config_destroy(&again);
	} else {
		for (size_t i = 0; i < dg_config_error_count(cfg); i++)
			assert(strncmp(dg_config_error(cfg, i), "fuzz.ini:", 9) == 0);
	}
	dg_config_destroy(&cfg);
	free(text);
	return 0;
}
