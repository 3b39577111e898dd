// Pages by path (history API): /, /map, /vpns/NAME, /gateways/NAME, /audit, /federation.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'overview' }
  | { page: 'map' }
  | { page: 'vpn'; name: string }
  | { page: 'gateway'; name: string }
  | { page: 'audit'; query: URLSearchParams }
  | { page: 'federation' }
  | { page: 'unknown'; path: string };

export function parseRoute(path: string, search = ''): Route {
  const parts = path
    .split('/')
    .filter(Boolean)
    .map((p) => decodeURIComponent(p));
  if (parts.length === 0) return { page: 'overview' };
  if (parts.length === 1 && parts[0] === 'map') return { page: 'map' };
  if (parts.length === 1 && parts[0] === 'audit') return { page: 'audit', query: new URLSearchParams(search) };
  if (parts.length === 1 && parts[0] === 'federation') return { page: 'federation' };
  if (parts.length === 2 && parts[0] === 'vpns') return { page: 'vpn', name: parts[1] };
  if (parts.length === 2 && parts[0] === 'gateways') return { page: 'gateway', name: parts[1] };
  return { page: 'unknown', path };
}

export const href = {
  vpn: (name: string) => `/vpns/${encodeURIComponent(name)}`,
  gateway: (name: string) => `/gateways/${encodeURIComponent(name)}`,
};

export function navigate(to: string): void {
  if (to === location.pathname + location.search) return;
  history.pushState(null, '', to);
  dispatchEvent(new PopStateEvent('popstate'));
  window.scrollTo(0, 0);
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.pathname, location.search));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.pathname, location.search));
    addEventListener('popstate', on);
    return () => removeEventListener('popstate', on);
  }, []);
  return route;
}

/** Links within the console change the page without loading it again. */
export function interceptLinks(root: HTMLElement): () => void {
  const on = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = (e.target as HTMLElement).closest('a');
    if (!a || a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
    e.preventDefault();
    navigate(a.pathname + a.search);
  };
  root.addEventListener('click', on);
  return () => root.removeEventListener('click', on);
}
