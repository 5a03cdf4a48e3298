/* Embeds texts through the C API and prints one line per text: its token count, then the
 * vector's floats (%.9g, which round-trips a float exactly).
 *
 * usage: embed MODEL TEXTS TASK DIMENSIONS
 *   TEXTS: records of "<byte length>\n<bytes>\n"; TASK: a GGUF_EMBED_TASK_ value;
 *   DIMENSIONS: 0 for all. The test compares the output with the CLI's vectors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_embed.h"

static void fail(const char *what, GgufEmbedStatus status) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)status, gguf_embed_last_error());
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: embed MODEL TEXTS TASK DIMENSIONS\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    size_t cap = 64, n = 0;
    GgufEmbedText *texts = malloc(cap * sizeof *texts);
    size_t len;
    while (fscanf(f, "%zu", &len) == 1) {
        fgetc(f); /* the newline after the length */
        char *data = malloc(len + 1);
        if (fread(data, 1, len, f) != len) {
            fprintf(stderr, "truncated texts file\n");
            return 1;
        }
        fgetc(f); /* the newline after the text */
        if (n == cap) {
            cap *= 2;
            texts = realloc(texts, cap * sizeof *texts);
        }
        texts[n].data = data;
        texts[n].len = len;
        n++;
    }
    fclose(f);

    GgufEmbedderOptions load;
    gguf_embed_embedder_options_default(&load);
    load.device = "cpu";
    load.threads = 2;
    GgufEmbedder *embedder = NULL;
    GgufEmbedStatus status = gguf_embed_embedder_new(argv[1], &load, &embedder);
    if (status != GGUF_EMBED_STATUS_OK) fail("gguf_embed_embedder_new", status);

    GgufEmbedOptions options;
    gguf_embed_options_default(&options);
    options.task = atoi(argv[3]);
    options.dimensions = (uint32_t)atoi(argv[4]);
    size_t width = options.dimensions ? options.dimensions : gguf_embed_embedder_dimensions(embedder);

    float *out = malloc(n * width * sizeof *out);
    uint32_t *tokens = malloc(n * sizeof *tokens);
    status = gguf_embed_embed(embedder, texts, n, &options, out, n * width, tokens);
    if (status != GGUF_EMBED_STATUS_OK) fail("gguf_embed_embed", status);
    for (size_t i = 0; i < n; i++) {
        printf("%u", tokens[i]);
        for (size_t j = 0; j < width; j++) printf(" %.9g", out[i * width + j]);
        printf("\n");
    }
    gguf_embed_embedder_free(embedder);
    return 0;
}
