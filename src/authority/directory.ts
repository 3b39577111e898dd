// The directory of protected prefixes: every prefix a membership names (whatever the gateway's
// status) plus the entries an administrator adds by hand. Every gateway receives it, compacted,
// and never relays traffic toward a protected prefix in the clear, so stripping key-search
// entries cannot downgrade a path to plain. It changes only when a prefix first appears or last
// disappears; that change concerns every gateway.
import { Prefix } from '../base/addr.js';
import type { Change } from './change.js';
import type { AuthorityContext } from './context.js';
import { conflict, must, notFound } from './errors.js';
import type { StateRow, StoreOps } from './storage/types.js';
import { checkPrefixes, compactPrefixes, parsePrefixes } from './validate.js';
import type { DirectoryView } from './wire.js';

export class Directory {
  /** The compacted list at one directory version: every delivery needs it, it rarely changes. */
  private cache: { version: number; prefixes: string[] } | undefined;

  constructor(private readonly ctx: AuthorityContext) {}

  async view(): Promise<DirectoryView> {
    return this.ctx.store.read(async (tx) => ({
      entries: await tx.listDirectory(),
      protectedPrefixes: await this.prefixes(tx),
    }));
  }

  async add(actor: string, prefixText: string, note: string): Promise<DirectoryView> {
    const prefix = must(checkPrefixes([prefixText]))[0].toString();
    await this.ctx.change(actor, async (c) => {
      if ((await c.tx.listDirectory()).some((d) => d.prefix === prefix))
        throw conflict('directory-entry-exists', `${prefix} is already in the directory`);
      await c.tx.insertDirectory({ prefix, note, addedAt: c.now });
      await this.note(c, [prefix], true);
      c.audit('directory.add', { scope: c.directoryChanged ? 'all' : 'none', detail: { prefix, note } });
    });
    return this.view();
  }

  async remove(actor: string, prefixText: string): Promise<DirectoryView> {
    const prefix = must(parsePrefixes([prefixText]))[0].toString();
    await this.ctx.change(actor, async (c) => {
      if (!(await c.tx.deleteDirectory(prefix)))
        throw notFound('unknown-directory-entry', `${prefix} is not a directory entry`);
      await this.note(c, [prefix], false);
      c.audit('directory.remove', { scope: c.directoryChanged ? 'all' : 'none', detail: { prefix } });
    });
    return this.view();
  }

  /**
   * After `prefixes` were added to or removed from a membership or the entries: marks the directory changed if one now
   * appears or disappears.
   */
  async note(c: Change, prefixes: readonly string[], added: boolean): Promise<void> {
    for (const p of prefixes) {
      const uses = await c.tx.countPrefixUses(p);
      if ((added && uses === 1) || (!added && uses === 0)) {
        c.directoryChanged = true;
        (added ? c.directoryAdded : c.directoryRemoved).push(p);
      }
    }
  }

  /** The protected prefixes, compacted, at the directory version of `known` (or of the store's state). */
  async prefixes(tx: StoreOps, known?: StateRow): Promise<string[]> {
    const state = known ?? (await tx.state());
    if (this.cache?.version === state.directoryVersion) return this.cache.prefixes;
    const prefixes = compactPrefixes((await tx.listAllPrefixes()).map((p) => Prefix.from(p))).map(String);
    this.cache = { version: state.directoryVersion, prefixes };
    return prefixes;
  }
}
