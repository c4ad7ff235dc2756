import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';

// Built into ui/dist and embedded in the custos-app binary (no dev server, no remote assets).
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { port: 5173, strictPort: true },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'safari15',
    // Keep everything as files: the CSP forbids inline scripts and data: scripts.
    assetsInlineLimit: 0,
    sourcemap: false,
  },
});
