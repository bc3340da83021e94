/*  replay.c: a main() for the fuzz targets that runs each file named on
 *  the command line through LLVMFuzzerTestOneInput once.  It lets `make
 *  check` replay the corpora with any compiler and any SANITIZE= build,
 *  without libFuzzer.  */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
main(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		if (!f) {
			perror(argv[i]);
			return 1;
		}
		uint8_t *buf = NULL;
		size_t size = 0, cap = 0, n;
		do {
			if (size == cap) {
				cap = cap ? cap * 2 : 4096;
				uint8_t *b = realloc(buf, cap);
				if (!b) {
					fclose(f);
					free(buf);
					return 1;
				}
				buf = b;
			}
			n = fread(buf + size, 1, cap - size, f);
			size += n;
		} while (n > 0);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, size);
		free(buf);
	}
	return 0;
}
