// Preloaded into the server by the soak script only: SIGUSR2 forces a full GC, so
// memory is compared as what is retained, not as whatever garbage V8 has not
// collected yet (under load V8 grows its heap lazily while memory is plentiful).
process.on("SIGUSR2", () => {
  globalThis.gc?.();
  globalThis.gc?.();
});
