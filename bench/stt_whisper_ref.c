/* bench/stt_whisper_ref.c - the reference side of bench/stt.sh: whisper.cpp's
 * own C API, with nothing in between.
 *
 * Does what Hearth's stt-whisper plugin does, with the same parameters
 * (whisper.cpp defaults plus: no GPU, flash attention off, greedy with
 * best_of 5, language "en", no_context, no_speech_thold 0.6, no printing):
 * load the model, warm up on 1 s of silence, then transcribe a 16 kHz mono
 * PCM16 WAV file RUNS times. Prints one JSON line with the timings and the
 * text of the last run.
 *
 *   stt_whisper_ref MODEL WAV [--threads N] [--runs N] [--no-warmup]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "whisper.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* CPU time of the whole process (all threads), in ms. */
static double cpu_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)level; (void)text; (void)user;
}

static void die(const char *what) {
    fprintf(stderr, "stt_whisper_ref: %s\n", what);
    exit(1);
}

/* Reads a 16 kHz mono PCM16 WAV file into floats in [-1, 1). */
static float *read_wav(const char *path, int *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open the WAV file");
    char riff[12];
    if (fread(riff, 1, 12, f) != 12 || memcmp(riff, "RIFF", 4) || memcmp(riff + 8, "WAVE", 4)) die("not a WAV file");
    int ok_fmt = 0;
    for (;;) {
        char id[4];
        uint32_t size;
        if (fread(id, 1, 4, f) != 4 || fread(&size, 4, 1, f) != 1) die("no data chunk");
        if (!memcmp(id, "fmt ", 4)) {
            uint8_t fmt[64] = {0};
            if (size > sizeof fmt || fread(fmt, 1, size, f) != size) die("bad fmt chunk");
            uint16_t format = fmt[0] | fmt[1] << 8, channels = fmt[2] | fmt[3] << 8, bits = fmt[14] | fmt[15] << 8;
            uint32_t rate = fmt[4] | fmt[5] << 8 | fmt[6] << 16 | (uint32_t)fmt[7] << 24;
            if (format != 1 || channels != 1 || bits != 16 || rate != 16000) die("need 16 kHz mono PCM16");
            ok_fmt = 1;
        } else if (!memcmp(id, "data", 4)) {
            if (!ok_fmt) die("data before fmt");
            int n = size / 2;
            int16_t *pcm = malloc(size);
            float *out = malloc(sizeof(float) * n);
            if (!pcm || !out || fread(pcm, 2, n, f) != (size_t)n) die("short data chunk");
            for (int i = 0; i < n; i++) out[i] = pcm[i] / 32768.0f;
            free(pcm);
            fclose(f);
            *n_out = n;
            return out;
        } else {
            fseek(f, size + (size & 1), SEEK_CUR);
        }
    }
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static struct whisper_full_params params_for(int threads, int audio_ctx) {
    struct whisper_full_params p = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    p.audio_ctx = audio_ctx;
    p.greedy.best_of = 5;
    p.n_threads = threads;
    p.language = "en";
    p.translate = false;
    p.no_context = true;
    p.no_speech_thold = 0.6f;
    p.print_special = false;
    p.print_progress = false;
    p.print_realtime = false;
    p.print_timestamps = false;
    return p;
}

int main(int argc, char **argv) {
    if (argc < 3) die("usage: stt_whisper_ref MODEL WAV [--threads N] [--runs N] [--no-warmup] [--audio-ctx auto|N]");
    /* audio_ctx: 0 is whisper.cpp's full 30 s window; -1 ("auto") fits it to
       the clip as Hearth's stt-whisper does by default: one encoder frame per
       320 samples plus 256, the full window from 1500 frames on. */
    int threads = 2, runs = 3, warm = 1, audio_ctx = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-warmup")) warm = 0;
        else if (!strcmp(argv[i], "--audio-ctx") && i + 1 < argc) {
            i++;
            audio_ctx = strcmp(argv[i], "auto") ? atoi(argv[i]) : -1;
        }
        else die("unknown argument");
    }
    whisper_log_set(quiet, NULL);
    int n = 0;
    float *audio = read_wav(argv[2], &n);

    double t0 = now_ms();
    struct whisper_context_params cp = whisper_context_default_params();
    cp.use_gpu = false;
    cp.flash_attn = false;
    struct whisper_context *ctx = whisper_init_from_file_with_params_no_state(argv[1], cp);
    if (!ctx) die("cannot load the model");
    struct whisper_state *state = whisper_init_state(ctx);
    if (!state) die("cannot allocate the state");
    double load_ms = now_ms() - t0;

    if (audio_ctx < 0) {
        audio_ctx = (n + 319) / 320 + 256;
        if (audio_ctx >= 1500) audio_ctx = 0;
    }
    struct whisper_full_params p = params_for(threads, audio_ctx);
    double warmup_ms = 0;
    if (warm) {
        float *silence = calloc(16000, sizeof(float));
        t0 = now_ms();
        if (whisper_full_with_state(ctx, state, p, silence, 16000) != 0) die("warmup failed");
        warmup_ms = now_ms() - t0;
        free(silence);
    }

    printf("{\"engine\":\"whisper.cpp %s C API\",\"audio_ctx\":%d,\"threads\":%d,\"load_ms\":%.3f,\"warmup_ms\":%.3f,\"audio_seconds\":%.3f,\"run_ms\":[",
           whisper_version(), audio_ctx, threads, load_ms, warmup_ms, n / 16000.0);
    double *cpu = calloc(runs, sizeof(double));
    for (int r = 0; r < runs; r++) {
        t0 = now_ms();
        double c0 = cpu_ms();
        if (whisper_full_with_state(ctx, state, p, audio, n) != 0) die("transcription failed");
        cpu[r] = cpu_ms() - c0;
        printf("%s%.3f", r ? "," : "", now_ms() - t0);
    }
    printf("],\"cpu_ms\":[");
    for (int r = 0; r < runs; r++) printf("%s%.3f", r ? "," : "", cpu[r]);
    free(cpu);
    printf("],\"text\":");
    /* The text as Hearth joins it: trimmed segments separated by one space. */
    size_t cap = 1 << 16, len = 0;
    char *text = calloc(cap, 1);
    for (int i = 0; i < whisper_full_n_segments_from_state(state); i++) {
        const char *s = whisper_full_get_segment_text_from_state(state, i);
        while (*s == ' ') s++;
        size_t l = strlen(s);
        while (l && s[l - 1] == ' ') l--;
        if (len + l + 2 >= cap) break;
        if (len) text[len++] = ' ';
        memcpy(text + len, s, l);
        len += l;
    }
    json_string(text);
    printf("}\n");
    whisper_free_state(state);
    whisper_free(ctx);
    free(text);
    free(audio);
    return 0;
}
