/*  test_rows.c: the row descriptions (rows.h) are what the CLI's text,
 *  its JSON and the console's cells are printed from: the same columns
 *  in the same order, the same field under each, and a room's stage
 *  columns made from the wire catalogue rather than written down.  */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "rows.h"

typedef const dg_rows_t *(s_rows_fn)(void);

static s_rows_fn *const s_all[] = {
	dg_rows_instances, dg_rows_queues, dg_rows_rooms, dg_rows_threads,
	dg_rows_sockets, dg_rows_rails,
};
#define NALL (sizeof s_all / sizeof s_all[0])

/* What `print` writes, in `buf`. */
static char *
s_capture(void (*print)(FILE *, const dg_rows_t *, const void *, size_t),
    const dg_rows_t *rows, const void *first, size_t n, char *buf,
    size_t size)
{
	FILE *out = fmemopen(buf, size, "w");

	assert_non_null(out);
	print(out, rows, first, n);
	assert_true(ftell(out) < (long)size - 1);
	fclose(out);
	return buf;
}

static bool
s_shown(const dg_col_t *col, dg_surface_t surface)
{
	return dg_col_look(col, surface)->width > 0;
}

/* Every column shows somewhere, and no surface has a title or a key
 * twice: a reader finds one column by its name. */
static void
test_sound(void **state)
{
	(void)state;
	for (size_t d = 0; d < NALL; d++) {
		const dg_rows_t *rows = s_all[d]();
		assert_non_null(rows);
		assert_true(rows->ncols > 0);
		for (size_t i = 0; i < rows->ncols; i++) {
			const dg_col_t *a = &rows->cols[i];
			assert_non_null(a->header);
			assert_true(a->key || s_shown(a, DG_SURFACE_TEXT) ||
			    s_shown(a, DG_SURFACE_CONSOLE));
			for (size_t j = i + 1; j < rows->ncols; j++) {
				const dg_col_t *b = &rows->cols[j];
				if (a->key && b->key)
					assert_string_not_equal(a->key, b->key);
				for (int s = 0; s < 2; s++)
					if (s_shown(a, s) && s_shown(b, s))
						assert_string_not_equal(
						    dg_col_title(a, s),
						    dg_col_title(b, s));
			}
		}
		const char *keys[] = { rows->name_key, rows->room_key,
		    rows->request_key };
		for (size_t k = 0; k < 3; k++)
			if (keys[k])
				assert_non_null(dg_rows_col(rows, keys[k]));
	}
}

/* A row of `rows` with each field set from its column's place:
 * strings "<i>", numbers 1000 + i. */
static void *
s_sample(const dg_rows_t *rows, char names[][24])
{
	char *row = calloc(1, rows->size);

	assert_non_null(row);
	for (size_t i = 0; i < rows->ncols; i++) {
		const dg_col_t *col = &rows->cols[i];
		void *at = row + col->offset;
		snprintf(names[i], sizeof names[i], "<%zu>", i);
		switch (col->type) {
		case DG_COL_STR: *(const char **)at = names[i]; break;
		case DG_COL_INT: *(int64_t *)at = 1000 + (int64_t)i; break;
		case DG_COL_UINT: *(uint64_t *)at = 1000 + i; break;
		case DG_COL_FLOAT: *(double *)at = 1000.0 + (double)i; break;
		case DG_COL_BOOL: *(bool *)at = true; break;
		default: break;
		}
	}
	return row;
}

/* `line` with its runs of blanks made one, and none at the ends. */
static void
s_squeeze(char *line)
{
	char *out = line;

	for (const char *in = line; *in; in++)
		if (*in != ' ' || (out > line && out[-1] != ' '))
			*out++ = *in;
	while (out > line && out[-1] == ' ')
		out--;
	*out = '\0';
}

/* The CLI's header is the titles of its columns, in order. */
static void
s_check_header(const dg_rows_t *rows, char *header)
{
	char want[1024] = "";

	for (size_t i = 0; i < rows->ncols; i++)
		if (s_shown(&rows->cols[i], DG_SURFACE_TEXT))
			snprintf(want + strlen(want), sizeof want - strlen(want),
			    "%s%s", want[0] ? " " : "",
			    dg_col_title(&rows->cols[i], DG_SURFACE_TEXT));
	s_squeeze(header);
	assert_string_equal(header, want);
}

/* The text table, the JSON and the console come from the same columns:
 * the JSON object has the keys in column order, a string field reads
 * the same on every surface that shows it, and a number sorts the
 * console by the value the JSON prints. */
static void
test_same_columns(void **state)
{
	(void)state;
	for (size_t d = 0; d < NALL; d++) {
		const dg_rows_t *rows = s_all[d]();
		char names[64][24], buf[DG_CELL_MAX], text[2048], json[2048];
		assert_true(rows->ncols <= 64);
		void *row = s_sample(rows, names);
		s_capture(dg_rows_text, rows, row, 1, text, sizeof text);
		char *cells = strchr(text, '\n');
		assert_non_null(cells);
		*cells++ = '\0';
		s_check_header(rows, text);
		s_capture(dg_rows_json, rows, row, 1, json, sizeof json);
		const char *at = json;
		for (size_t i = 0; i < rows->ncols; i++) {
			const dg_col_t *col = &rows->cols[i];
			bool str = col->type == DG_COL_STR;
			char key[80];
			double sort = -1;
			const char *cell = dg_col_cell(col, DG_SURFACE_CONSOLE,
			    row, buf, sizeof buf, &sort);
			if (str && s_shown(col, DG_SURFACE_TEXT))
				assert_non_null(strstr(cells, names[i]));
			if (str && s_shown(col, DG_SURFACE_CONSOLE))
				assert_string_equal(cell, names[i]);
			if (!col->key)
				continue;
			snprintf(key, sizeof key, "\"%s\":", col->key);
			at = strstr(at, key);
			assert_non_null(at);    /* there, and in order */
			at += strlen(key);
			if (str)
				assert_memory_equal(at + 1, names[i],
				    strlen(names[i]));
			/* A rail's number sorts as its text "rail N", as
			 * it always did. */
			bool number = col->type == DG_COL_INT ||
			    col->type == DG_COL_UINT ||
			    col->type == DG_COL_FLOAT;
			if (number && s_shown(col, DG_SURFACE_CONSOLE) &&
			    strcmp(col->key, "rail") != 0)
				assert_true(sort == strtod(at, NULL));
		}
		free(row);
	}
}

/* One instance, three ways, as the CLI and the console print it. */
static void
test_instance(void **state)
{
	(void)state;
	const dg_instance_row_t in = { .role = "upscaler", .name = "u0",
	    .host = "", .state = "up", .peer = "ipc://u0", .incoming = 1,
	    .waiting = 2, .ready = 3, .running = 4, .sending = 5, .rooms = 6,
	    .free_slots = 7, .rps = 12.345, .p50_us = 1234, .p99_us = 99999,
	    .heartbeat_age_ms = 75000, .ms_per_mpx = 976.5,
	    .backlog_ms = 1200 };
	const dg_rows_t *rows = dg_rows_instances();
	char text[1024], json[1024];

	s_capture(dg_rows_text, rows, &in, 1, text, sizeof text);
	s_capture(dg_rows_json, rows, &in, 1, json, sizeof json);

	/* The CLI shows free slots, req/s, p50 and p99 too (issue 13). */
	assert_string_equal(text,
	    "ROLE         NAME       STATE      INCOMING  WAITING  READY  "
	    "RUNNING  SENDING   ROOMS   FREE   REQ/S   P50MS   P99MS     HB\n"
	    "upscaler     u0         up                1        2      3  "
	    "      4        5       6      7    12.3     1.2   100.0    75s\n");
	assert_string_equal(json, "[{\"role\":\"upscaler\",\"name\":\"u0\","
	    "\"host\":\"\",\"state\":\"up\",\"peer\":\"ipc://u0\","
	    "\"incoming\":1,\"waiting\":2,\"ready\":3,\"running\":4,"
	    "\"sending\":5,\"rooms\":6,\"free_slots\":7,\"rps\":12.35,"
	    "\"p50_us\":1234,\"p99_us\":99999,\"heartbeat_age_ms\":75000,"
	    "\"ms_per_mpx\":976.50,\"backlog_ms\":1200}]");
	const char *want[] = { "upscaler", "u0", "-", "up", "1", "2", "3", "4",
	    "5", "6", "7", "12.3", "1.2", "100.0", "1m15s", "976.5", "1200" };
	size_t k = 0;
	char buf[DG_CELL_MAX];
	for (size_t i = 0; i < rows->ncols; i++)
		if (s_shown(&rows->cols[i], DG_SURFACE_CONSOLE))
			assert_string_equal(dg_col_cell(&rows->cols[i],
			    DG_SURFACE_CONSOLE, &in, buf, sizeof buf, NULL),
			    want[k++]);
	assert_int_equal(k, sizeof want / sizeof want[0]);
}

/* A room's stage columns are the wire row's required strings other
 * than its state, in the wire's order, titled by their keys. */
static void
test_room_stages(void **state)
{
	(void)state;
	const dg_rows_t *rows = dg_rows_rooms();
	const dg_op_desc_t *op = dg_proto_op_desc(DG_OP_ROOMS_OK);
	const dg_struct_desc_t *wire = op->body.fields[0].row;
	size_t stages = 0;

	assert_non_null(wire);
	for (size_t i = 0, k = 0; i < wire->nfields; i++) {
		const dg_field_desc_t *f = &wire->fields[i];
		const dg_col_t *col = dg_rows_col(rows, f->key);
		if (!col)
			continue;
		assert_ptr_equal(col, &rows->cols[k++]);  /* wire order */
		assert_int_equal(col->offset, f->offset);
		bool stage = f->type == DG_FT_STR &&
		    (f->flags & DG_FIELD_REQUIRED) &&
		    strcmp(f->key, "state") != 0;
		assert_int_equal(col->stage, stage);
		if (!stage)
			continue;
		stages++;
		for (size_t c = 0; f->key[c]; c++)
			assert_int_equal(col->header[c],
			    toupper((unsigned char)f->key[c]));
		/* Version 1's places: for JSON readers only. */
		assert_int_equal(col->text.width, 0);
		assert_int_equal(col->console.width, 0);
		assert_non_null(col->key);
	}
	assert_true(stages > 0);
}

/* A room of a four-stage chain shows its roles by the configuration's
 * names: AT the role it is at, PLACES its instances in chain order, and
 * the JSON the whole chain. */
static void
test_room_chain(void **state)
{
	static const dg_stage_row_t chain[] = {
		{ "encoder", "e0", NULL }, { "high", "h0", NULL },
		{ "low", "l0", NULL }, { "decoder", "d0", NULL },
	};
	const dg_room_row_t room = { .room = 5, .request = 7,
	    .state = "denoising", .encoder = "e0", .transformer = "h0,l0",
	    .decoder = "d0", .stage = "high", .stages = chain,
	    .n_stages = 4 };
	const dg_rows_t *rows = dg_rows_rooms();
	char buf[DG_CELL_MAX];
	double sort;
	(void)state;

	const dg_col_t *at = dg_rows_col(rows, "stage");
	const dg_col_t *places = dg_rows_col(rows, "stages");
	assert_non_null(at);
	assert_non_null(places);
	for (int s = 0; s < 2; s++) {
		dg_surface_t surface = s ? DG_SURFACE_CONSOLE : DG_SURFACE_TEXT;
		assert_string_equal(dg_col_cell(at, surface, &room, buf,
		    sizeof buf, &sort), "high");
		assert_string_equal(dg_col_cell(places, surface, &room, buf,
		    sizeof buf, &sort), "e0 > h0 > l0 > d0");
	}
	char *json = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&json, &size);
	dg_rows_json(f, rows, &room, 1);
	fclose(f);
	assert_non_null(strstr(json, "\"stage\":\"high\""));
	assert_non_null(strstr(json, "\"stages\":[{\"role\":\"encoder\","
	    "\"name\":\"e0\"},{\"role\":\"high\",\"name\":\"h0\"},"));
	assert_non_null(strstr(json, "\"transformer\":\"h0,l0\""));
	free(json);
}

/* The console lists rails among the sockets: each rail column it shows
 * goes under a socket column of the same title. */
static void
test_rails_under_sockets(void **state)
{
	(void)state;
	const dg_rows_t *rails = dg_rows_rails();
	const dg_rows_t *sockets = dg_rows_sockets();

	for (size_t i = 0; i < rails->ncols; i++) {
		const dg_col_t *r = &rails->cols[i];
		bool found = false;
		if (!s_shown(r, DG_SURFACE_CONSOLE))
			continue;
		for (size_t j = 0; j < sockets->ncols; j++)
			found |= s_shown(&sockets->cols[j], DG_SURFACE_CONSOLE)
			    && strcmp(dg_col_title(r, DG_SURFACE_CONSOLE),
			    dg_col_title(&sockets->cols[j],
			    DG_SURFACE_CONSOLE)) == 0;
		assert_true(found);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sound),
		cmocka_unit_test(test_same_columns),
		cmocka_unit_test(test_instance),
		cmocka_unit_test(test_room_stages),
		cmocka_unit_test(test_room_chain),
		cmocka_unit_test(test_rails_under_sockets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
