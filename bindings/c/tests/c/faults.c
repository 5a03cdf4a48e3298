/* Bad arguments and faults through the C API, and two threads embedding at once. Prints
 * "ok NAME" per check; on the first failure prints "FAIL NAME ..." and exits 1.
 *
 * usage: faults MODEL */
#define _POSIX_C_SOURCE 200809L /* setenv, mkdtemp */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_embed.h"

static void check(int ok, const char *name, GgufEmbedStatus status) {
    if (!ok) {
        printf("FAIL %s: status %d, message \"%s\"\n", name, (int)status, gguf_embed_last_error());
        exit(1);
    }
    printf("ok %s\n", name);
}

/* Whether the last error on this thread mentions `needle`. */
static int says(const char *needle) { return strstr(gguf_embed_last_error(), needle) != NULL; }

static GgufEmbedText text(const char *s) {
    GgufEmbedText t = {s, strlen(s)};
    return t;
}

#define N_TEXTS 4
#define ROUNDS 10
static const char *TEXTS[N_TEXTS] = {
    "The quick brown fox jumps over the lazy dog.",
    "fn main() { println!(\"hello\"); }",
    "Paris est la capitale de la France.",
    "how do I read a file in rust",
};

struct worker {
    GgufEmbedder *embedder;
    const float *reference;
    size_t width;
    int equal;
    GgufEmbedStatus status;
};

/* Cosine similarity of two vectors. */
static double cosine(const float *a, const float *b, size_t n) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    return dot / sqrt(na * nb);
}

/* Embeds the texts ROUNDS times and compares every vector with the reference. Texts from
 * both threads share decodes, and a different batch moves a vector by up to 1e-5 in cosine
 * (the library's own tests allow the same), so "equal" is cosine >= 0.99999. */
static void *work(void *arg) {
    struct worker *w = arg;
    GgufEmbedText texts[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) texts[i] = text(TEXTS[i]);
    float *out = malloc(N_TEXTS * w->width * sizeof *out);
    w->equal = 1;
    for (int round = 0; round < ROUNDS; round++) {
        w->status = gguf_embed_embed(w->embedder, texts, N_TEXTS, NULL, out, N_TEXTS * w->width, NULL);
        if (w->status != GGUF_EMBED_STATUS_OK) break;
        for (int i = 0; i < N_TEXTS; i++) {
            const float *got = out + i * w->width, *want = w->reference + i * w->width;
            if (cosine(got, want, w->width) < 0.99999) w->equal = 0;
        }
    }
    free(out);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: faults MODEL\n");
        return 2;
    }
    const char *model = argv[1];
    GgufEmbedStatus s;
    GgufEmbedder *e = (GgufEmbedder *)1;

    s = gguf_embed_embedder_new(NULL, NULL, &e);
    check(s == GGUF_EMBED_STATUS_NULL_ARGUMENT && e == NULL && says("model"), "new_null_model", s);
    s = gguf_embed_embedder_new(model, NULL, NULL);
    check(s == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("out"), "new_null_out", s);
    s = gguf_embed_embedder_new("/nonexistent/dir/model.gguf", NULL, &e);
    check(s == GGUF_EMBED_STATUS_MODEL && e == NULL && says("/nonexistent/dir/model.gguf"),
          "new_missing_file", s);
    s = gguf_embed_embedder_new("\xff\xfe.gguf", NULL, &e);
    check(s == GGUF_EMBED_STATUS_INVALID_UTF8 && e == NULL, "new_invalid_utf8", s);

    /* A catalog model that is not cached, with the Hub unreachable: a download error. */
    char cache[] = "/tmp/gguf-embed-faults-XXXXXX";
    check(mkdtemp(cache) != NULL, "mkdtemp", GGUF_EMBED_STATUS_OK);
    setenv("HF_HOME", cache, 1);
    setenv("HF_ENDPOINT", "http://127.0.0.1:9", 1);
    unsetenv("HF_HUB_OFFLINE");
    s = gguf_embed_embedder_new("Qwen/Qwen3-Embedding-0.6B", NULL, &e);
    check(s == GGUF_EMBED_STATUS_DOWNLOAD && e == NULL, "new_hub_unreachable", s);
    GgufEmbedderOptions load;
    gguf_embed_embedder_options_default(&load);
    load.offline = 1;
    s = gguf_embed_embedder_new("Qwen/Qwen3-Embedding-0.6B", &load, &e);
    check(s == GGUF_EMBED_STATUS_MODEL && says("not in the model cache"), "new_offline_not_cached", s);
    rmdir(cache);

    gguf_embed_embedder_options_default(&load);
    load.device = "tpu";
    s = gguf_embed_embedder_new(model, &load, &e);
    check(s == GGUF_EMBED_STATUS_INVALID_ARGUMENT && says("tpu"), "new_unknown_device", s);
    load.device = "cpu";
    load.truncate = 7;
    s = gguf_embed_embedder_new(model, &load, &e);
    check(s == GGUF_EMBED_STATUS_INVALID_ARGUMENT && says("truncate"), "new_bad_truncate", s);
    load.truncate = GGUF_EMBED_TRUNCATE_END;
    load.threads = 2;
    s = gguf_embed_embedder_new(model, &load, &e);
    check(s == GGUF_EMBED_STATUS_OK && e != NULL && gguf_embed_last_error()[0] == '\0', "new", s);

    size_t width = gguf_embed_embedder_dimensions(e);
    check(width > 0 && gguf_embed_embedder_dimensions(NULL) == 0, "dimensions", GGUF_EMBED_STATUS_OK);

    GgufEmbedText one[1] = {text("hello")};
    float *out = malloc(width * sizeof *out);
    for (size_t j = 0; j < width; j++) out[j] = 42.0f;
    s = gguf_embed_embed(NULL, one, 1, NULL, out, width, NULL);
    check(s == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("embedder"), "embed_null_embedder", s);
    s = gguf_embed_embed(e, NULL, 1, NULL, out, width, NULL);
    check(s == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("texts"), "embed_null_texts", s);
    s = gguf_embed_embed(e, one, 1, NULL, NULL, width, NULL);
    check(s == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("out"), "embed_null_out", s);
    GgufEmbedText null_data[1] = {{NULL, 5}};
    s = gguf_embed_embed(e, null_data, 1, NULL, out, width, NULL);
    check(s == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("texts[0].data"), "embed_null_text_data", s);
    GgufEmbedText bad_utf8[2] = {text("fine"), {"caf\xc3", 4}};
    s = gguf_embed_embed(e, bad_utf8, 2, NULL, out, width, NULL);
    check(s == GGUF_EMBED_STATUS_INVALID_UTF8 && says("texts[1]"), "embed_invalid_utf8", s);
    s = gguf_embed_embed(e, one, 1, NULL, out, width - 1, NULL);
    check(s == GGUF_EMBED_STATUS_BUFFER_SIZE && out[0] == 42.0f && out[width - 1] == 42.0f,
          "embed_wrong_buffer_size", s);

    GgufEmbedOptions options;
    gguf_embed_options_default(&options);
    options.dimensions = 7;
    s = gguf_embed_embed(e, one, 1, &options, out, 7, NULL);
    check(s == GGUF_EMBED_STATUS_INVALID_ARGUMENT && says("dimensions"), "embed_bad_dimensions", s);
    gguf_embed_options_default(&options);
    options.task = 99;
    s = gguf_embed_embed(e, one, 1, &options, out, width, NULL);
    check(s == GGUF_EMBED_STATUS_INVALID_ARGUMENT && says("task"), "embed_unknown_task", s);
    options.task = GGUF_EMBED_TASK_DOCUMENT;
    options.instruction = "\xff";
    s = gguf_embed_embed(e, one, 1, &options, out, width, NULL);
    check(s == GGUF_EMBED_STATUS_INVALID_UTF8 && says("instruction"), "embed_invalid_instruction", s);

    s = gguf_embed_embed(e, NULL, 0, NULL, NULL, 0, NULL);
    check(s == GGUF_EMBED_STATUS_OK, "embed_zero_texts", s);

    /* Counts at the limit: n_texts * width wraps around in size_t arithmetic to a small number,
       which out_len then matches; the call must refuse before reading a single text. */
    size_t wrapping = SIZE_MAX / width + 1;
    s = gguf_embed_embed(e, one, wrapping, NULL, out, wrapping * width, NULL);
    check(s == GGUF_EMBED_STATUS_BUFFER_SIZE && says("overflows"), "embed_count_overflows", s);
    s = gguf_embed_embed(e, one, SIZE_MAX, NULL, out, 0, NULL);
    check(s == GGUF_EMBED_STATUS_BUFFER_SIZE && says("overflows"), "embed_count_max", s);
    /* Token counts: the call's and count_tokens agree, and an instruction adds tokens. */
    uint32_t tokens = 0;
    size_t counted = 0, counted_query = 0;
    s = gguf_embed_embed(e, one, 1, NULL, out, width, &tokens);
    check(s == GGUF_EMBED_STATUS_OK, "embed", s);
    s = gguf_embed_count_tokens(e, one[0], NULL, &counted);
    check(s == GGUF_EMBED_STATUS_OK && counted == tokens && counted >= 2, "count_tokens", s);
    options.instruction = NULL;
    options.task = GGUF_EMBED_TASK_CODE_SEARCH;
    s = gguf_embed_count_tokens(e, one[0], &options, &counted_query);
    check(s == GGUF_EMBED_STATUS_OK && counted_query > counted, "count_tokens_query", s);
    s = gguf_embed_count_tokens(e, one[0], NULL, NULL);
    check(s == GGUF_EMBED_STATUS_NULL_ARGUMENT, "count_tokens_null", s);

    /* Over the limit with truncation off: an error naming the input; with it on, a vector. */
    GgufEmbedder *strict = NULL;
    load.max_tokens = 8;
    load.truncate = GGUF_EMBED_TRUNCATE_ERROR;
    s = gguf_embed_embedder_new(model, &load, &strict);
    check(s == GGUF_EMBED_STATUS_OK, "new_strict", s);
    GgufEmbedText long_text[1] = {text(TEXTS[0])};
    s = gguf_embed_embed(strict, long_text, 1, NULL, out, width, NULL);
    check(s == GGUF_EMBED_STATUS_TOO_LONG && says("input 0"), "embed_too_long", s);
    gguf_embed_embedder_free(strict);

    /* Two threads embedding at once get the vectors of a call made alone. */
    GgufEmbedText texts[N_TEXTS];
    for (int i = 0; i < N_TEXTS; i++) texts[i] = text(TEXTS[i]);
    float *reference = malloc(N_TEXTS * width * sizeof *reference);
    s = gguf_embed_embed(e, texts, N_TEXTS, NULL, reference, N_TEXTS * width, NULL);
    check(s == GGUF_EMBED_STATUS_OK, "embed_reference", s);
    struct worker workers[2];
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) {
        workers[t] = (struct worker){e, reference, width, 0, GGUF_EMBED_STATUS_OK};
        pthread_create(&threads[t], NULL, work, &workers[t]);
    }
    for (int t = 0; t < 2; t++) pthread_join(threads[t], NULL);
    for (int t = 0; t < 2; t++) {
        check(workers[t].status == GGUF_EMBED_STATUS_OK && workers[t].equal, "two_threads",
              workers[t].status);
    }

    gguf_embed_embedder_free(e);
    gguf_embed_embedder_free(NULL);
    free(out);
    free(reference);
    printf("done\n");
    return 0;
}
