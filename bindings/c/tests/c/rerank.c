/* The reranker through the C API.
 *
 * usage: rerank score MODEL TEXTS TASK
 *          TEXTS: records of "<byte length>\n<bytes>\n", the query first, then the documents;
 *          prints one line per document, in input order: its tokens, score and log-odds
 *          (%.9g, which round-trips a float exactly).
 *        rerank faults MODEL EMBEDDING_MODEL
 *          bad arguments and refusals; prints "ok NAME" per check, then "done". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf_embed.h"

static void fail(const char *what, GgufEmbedStatus status) {
    fprintf(stderr, "%s failed (status %d): %s\n", what, (int)status, gguf_embed_last_error());
    exit(1);
}

static void check(int ok, const char *name, GgufEmbedStatus status) {
    if (!ok) {
        printf("FAIL %s: status %d, message \"%s\"\n", name, (int)status, gguf_embed_last_error());
        exit(1);
    }
    printf("ok %s\n", name);
}

static int says(const char *needle) { return strstr(gguf_embed_last_error(), needle) != NULL; }

static GgufEmbedText text(const char *s) {
    GgufEmbedText t = {s, strlen(s)};
    return t;
}

static GgufEmbedReranker *load(const char *model) {
    GgufEmbedderOptions load;
    gguf_embed_embedder_options_default(&load);
    load.device = "cpu";
    load.threads = 2;
    GgufEmbedReranker *reranker = NULL;
    GgufEmbedStatus status = gguf_embed_reranker_new(model, &load, &reranker);
    if (status != GGUF_EMBED_STATUS_OK) fail("gguf_embed_reranker_new", status);
    return reranker;
}

static int score(const char *model, const char *path, int task) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    size_t cap = 64, n = 0, len;
    GgufEmbedText *texts = malloc(cap * sizeof *texts);
    while (fscanf(f, "%zu", &len) == 1) {
        fgetc(f);
        char *data = malloc(len + 1);
        if (fread(data, 1, len, f) != len) {
            fprintf(stderr, "truncated texts file\n");
            return 1;
        }
        fgetc(f);
        if (n == cap) {
            cap *= 2;
            texts = realloc(texts, cap * sizeof *texts);
        }
        texts[n].data = data;
        texts[n].len = len;
        n++;
    }
    fclose(f);
    GgufEmbedReranker *reranker = load(model);
    GgufEmbedRerankOptions options;
    gguf_embed_rerank_options_default(&options);
    options.task = task;
    size_t docs = n - 1;
    float *scores = malloc(docs * sizeof *scores), *log_odds = malloc(docs * sizeof *log_odds);
    uint32_t *tokens = malloc(docs * sizeof *tokens);
    GgufEmbedStatus status = gguf_embed_rerank(reranker, texts[0], texts + 1, docs, &options,
                                               scores, docs, log_odds, tokens);
    if (status != GGUF_EMBED_STATUS_OK) fail("gguf_embed_rerank", status);
    for (size_t i = 0; i < docs; i++) printf("%u %.9g %.9g\n", tokens[i], scores[i], log_odds[i]);
    gguf_embed_reranker_free(reranker);
    return 0;
}

static int faults(const char *model, const char *embedding_model) {
    GgufEmbedReranker *reranker = (GgufEmbedReranker *)1;
    GgufEmbedStatus status = gguf_embed_reranker_new(embedding_model, NULL, &reranker);
    check(status == GGUF_EMBED_STATUS_MODEL && reranker == NULL && says("is an embedding model"),
          "new_embedding_model", status);
    status = gguf_embed_reranker_new(NULL, NULL, &reranker);
    check(status == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("model"), "new_null_model", status);
    status = gguf_embed_reranker_new(model, NULL, NULL);
    check(status == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("out"), "new_null_out", status);
    GgufEmbedder *embedder = (GgufEmbedder *)1;
    status = gguf_embed_embedder_new(model, NULL, &embedder);
    check(status == GGUF_EMBED_STATUS_MODEL && embedder == NULL && says("is a reranker"),
          "embedder_refuses_a_reranker", status);

    reranker = load(model);
    GgufEmbedText docs[2] = {text("Paris is the capital of France."), text("Bread recipes")};
    float scores[2], log_odds[2];
    status = gguf_embed_rerank(reranker, text("capital of france"), docs, 2, NULL, scores, 1,
                               NULL, NULL);
    check(status == GGUF_EMBED_STATUS_BUFFER_SIZE && says("2 documents"), "wrong_buffer_size",
          status);
    status = gguf_embed_rerank(reranker, text("q"), NULL, 2, NULL, scores, 2, NULL, NULL);
    check(status == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("texts"), "null_documents", status);
    status = gguf_embed_rerank(NULL, text("q"), docs, 2, NULL, scores, 2, NULL, NULL);
    check(status == GGUF_EMBED_STATUS_NULL_ARGUMENT && says("reranker"), "null_reranker", status);
    GgufEmbedRerankOptions options;
    gguf_embed_rerank_options_default(&options);
    options.task = 99;
    status = gguf_embed_rerank(reranker, text("q"), docs, 2, &options, scores, 2, NULL, NULL);
    check(status == GGUF_EMBED_STATUS_INVALID_ARGUMENT && says("options.task"), "unknown_task",
          status);
    GgufEmbedText bad = {"\xff\xfe", 2};
    status = gguf_embed_rerank(reranker, bad, docs, 2, NULL, scores, 2, NULL, NULL);
    check(status == GGUF_EMBED_STATUS_INVALID_UTF8, "invalid_utf8_query", status);
    status = gguf_embed_rerank(reranker, text("q"), NULL, 0, NULL, NULL, 0, NULL, NULL);
    check(status == GGUF_EMBED_STATUS_OK, "no_documents", status);
    /* A custom instruction, and the same call twice: the same floats. */
    options.task = GGUF_EMBED_TASK_DOCUMENT;
    options.instruction = "Judge whether the passage names a capital city";
    float again[2];
    status = gguf_embed_rerank(reranker, text("capital"), docs, 2, &options, scores, 2,
                               log_odds, NULL);
    GgufEmbedStatus second = gguf_embed_rerank(reranker, text("capital"), docs, 2, &options,
                                               again, 2, NULL, NULL);
    check(status == GGUF_EMBED_STATUS_OK && second == GGUF_EMBED_STATUS_OK &&
              memcmp(scores, again, sizeof scores) == 0 && scores[0] > 0 && scores[0] < 1,
          "custom_instruction", status);
    gguf_embed_reranker_free(reranker);
    gguf_embed_reranker_free(NULL);
    printf("done\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "score") == 0) return score(argv[2], argv[3], atoi(argv[4]));
    if (argc == 4 && strcmp(argv[1], "faults") == 0) return faults(argv[2], argv[3]);
    fprintf(stderr, "usage: rerank score MODEL TEXTS TASK | rerank faults MODEL EMBEDDING_MODEL\n");
    return 2;
}
