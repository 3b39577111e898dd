// Small building blocks of the console's pages: data loading that follows the live events, forms
// that call the API and say what went wrong, confirmations in the page (no browser dialogs).
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError } from './api.js';
import { useLiveTick } from './live.js';

export interface Loaded<T> {
  data?: T;
  error?: ApiError | Error;
  reload(): void;
}

/** Loads with `load` now, and again whenever the authority reports a change (or `deps` change). */
export function useData<T>(load: () => Promise<T>, deps: unknown[], events?: string[]): Loaded<T> {
  const tick = useLiveTick(events);
  const [state, setState] = useState<{ data?: T; error?: Error }>({});
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    load().then(
      (data) => live && setState({ data }),
      (error: Error) => live && setState((s) => ({ data: s.data, error })),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { ...state, reload };
}

export function Problem({ error }: { error?: Error }) {
  if (!error) return null;
  const code = error instanceof ApiError ? ` (${error.code})` : '';
  return (
    <p class="problem" role="alert">
      {error.message}
      {code}
    </p>
  );
}

export function Help({ children }: { children: ComponentChildren }) {
  return <aside class="help">{children}</aside>;
}

/** A form whose submit runs `action`; shows its error, disables itself while it runs. */
export function ActionForm({
  action,
  children,
  label,
  class: cls,
}: {
  action: (data: FormData) => Promise<unknown>;
  children: ComponentChildren;
  label: string;
  class?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  return (
    <form
      class={cls ?? 'inline-form'}
      onSubmit={async (e) => {
        e.preventDefault();
        const form = e.currentTarget as HTMLFormElement;
        setBusy(true);
        setError(undefined);
        try {
          await action(new FormData(form));
          form.reset();
        } catch (err) {
          setError(err as Error);
        } finally {
          setBusy(false);
        }
      }}
    >
      {children}
      <button type="submit" disabled={busy}>
        {label}
      </button>
      <Problem error={error} />
    </form>
  );
}

/** A button that asks again in the page before it acts. */
export function ConfirmButton({
  label,
  question,
  action,
  danger,
}: {
  label: string;
  question: string;
  action: () => Promise<unknown>;
  danger?: boolean;
}) {
  const [asking, setAsking] = useState(false);
  const [error, setError] = useState<Error>();
  const [busy, setBusy] = useState(false);
  if (!asking) {
    return (
      <span class="confirm">
        <button type="button" class={danger ? 'danger' : ''} onClick={() => setAsking(true)}>
          {label}
        </button>
        <Problem error={error} />
      </span>
    );
  }
  return (
    <span class="confirm asking" role="group">
      <span>{question}</span>
      <button
        type="button"
        class={danger ? 'danger' : ''}
        disabled={busy}
        onClick={async () => {
          setBusy(true);
          setError(undefined);
          try {
            await action();
            setAsking(false);
          } catch (e) {
            setError(e as Error);
            setAsking(false);
          } finally {
            setBusy(false);
          }
        }}
      >
        Yes, {label[0].toLowerCase() + label.slice(1)}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

export function Field({ label, children }: { label: string; children: ComponentChildren }) {
  return (
    <label class="field">
      <span>{label}</span>
      {children}
    </label>
  );
}

export function Fields({ rows }: { rows: [string, ComponentChildren][] }) {
  return (
    <dl class="fields">
      {rows.map(([k, v]) => (
        <>
          <dt>{k}</dt>
          <dd>{v ?? '—'}</dd>
        </>
      ))}
    </dl>
  );
}

/** A table's header row: one cell per column name ('' for a column without a heading). */
export function TableHead({ columns }: { columns: string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c, i) => (
          <th key={i}>{c}</th>
        ))}
      </tr>
    </thead>
  );
}

export function Badge({ kind, children }: { kind: string; children: ComponentChildren }) {
  return <span class={`badge ${kind}`}>{children}</span>;
}
