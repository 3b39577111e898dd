// Live updates: the authority's server-sent events (GET /v1/events) — a new configuration version
// after every change, a gateway's new status report. Every page reloads its data through the API
// when one arrives (at most every 300 ms), so nothing needs a page reload.
import { useEffect, useState } from 'preact/hooks';

type Listener = (e: { type: string; data: unknown }) => void;
const listeners = new Set<Listener>();
let source: EventSource | undefined;
let connected = false;
const connectionListeners = new Set<(c: boolean) => void>();

export function startLive(onEnded: () => void): () => void {
  source = new EventSource('/v1/events');
  const set = (c: boolean) => {
    connected = c;
    for (const l of connectionListeners) l(c);
  };
  source.onopen = () => set(true);
  source.onerror = () => set(false);
  for (const type of ['hello', 'change', 'report']) {
    source.addEventListener(type, (ev) => {
      const data = JSON.parse((ev as MessageEvent<string>).data) as unknown;
      for (const l of listeners) l({ type, data });
    });
  }
  source.addEventListener('session-ended', () => {
    stopLive();
    onEnded();
  });
  return stopLive;
}

export function stopLive(): void {
  source?.close();
  source = undefined;
  connected = false;
  for (const l of connectionListeners) l(false);
}

/** A counter that grows when the authority says something changed (throttled). */
export function useLiveTick(types: string[] = ['change', 'report']): number {
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let timer: number | undefined;
    const l: Listener = (e) => {
      if (!types.includes(e.type) || timer !== undefined) return;
      timer = window.setTimeout(() => {
        timer = undefined;
        setTick((t) => t + 1);
      }, 300);
    };
    listeners.add(l);
    return () => {
      listeners.delete(l);
      if (timer !== undefined) clearTimeout(timer);
    };
  }, [types.join(',')]);
  return tick;
}

export function useConnected(): boolean {
  const [c, setC] = useState(connected);
  useEffect(() => {
    connectionListeners.add(setC);
    return () => void connectionListeners.delete(setC);
  }, []);
  return c;
}
