// The console's pages: overview, a VPN, the map, a gateway, the audit log, federation. Every
// change goes through the same /v1 API the CLI uses; every value is rendered as text.
import { useState } from 'preact/hooks';
import { api, ApiError } from './api.js';
import { bytes, duration, relative, time } from './format.js';
import { Graph } from './graph.js';
import { buildMapModel } from './map-model.js';
import { href, navigate } from './router.js';
import type { AuditEntry, FederationView, GatewayInfo, GatewayStatusView, ReportSummary, VpnDetail } from './types.js';
import { ActionForm, Badge, ConfirmButton, Field, Fields, Help, Problem, TableHead, useData } from './ui.js';

/**
 * Permits are renewed when a third of their validity is left (20 min of the default hour): one with
 * less than a quarter of this authority's validity left (15 min of the default hour) was not renewed in
 * time, or comes from a peer that issues shorter ones.
 */
const renewalOverdue = (f: FederationView) => (p: FederationView['permits'][number], now: number) =>
  p.notAfter - now < f.permitValidityMs / 4;

/** Federation is optional on an authority: 404 no-federation means none. */
async function federationOrNone(): Promise<FederationView | undefined> {
  try {
    return await api.federation();
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return undefined;
    throw e;
  }
}

function Contact({ r, status }: { r: ReportSummary | null; status: string }) {
  if (status !== 'active') return <Badge kind={status}>{status}</Badge>;
  if (!r) return <Badge kind="unknown">no report yet</Badge>;
  return (
    <span>
      <Badge kind={r.online ? 'online' : 'offline'}>{r.online ? 'online' : 'offline'}</Badge>{' '}
      <span class="muted">{relative(r.receivedAt)}</span>
    </span>
  );
}

// --- overview ---------------------------------------------------------------------------------

export function Overview() {
  const d = useData(async () => {
    const [status, vpns, gateways, federation, audit] = await Promise.all([
      api.status(),
      api.vpns(),
      api.gateways(),
      federationOrNone(),
      api.audit({ order: 'desc', limit: 12 }),
    ]);
    return { status, vpns, gateways, federation, audit };
  }, []);
  if (!d.data) return <Problem error={d.error} />;
  const { status, vpns, gateways, federation, audit } = d.data;
  const now = Date.now();
  const online = gateways.filter((g) => g.status === 'active' && g.lastReport?.online).length;
  const offline = gateways.filter((g) => g.status === 'active' && !g.lastReport?.online).length;
  const overdue = federation && renewalOverdue(federation);
  const soon = federation
    ? federation.permits.filter((p) => overdue!(p, now)).sort((a, b) => a.notAfter - b.notAfter)
    : [];
  return (
    <section>
      <h1>Overview</h1>
      <Help>
        This is authority <strong>{status.authority}</strong>: the papers' <em>MMS</em> (multi-homing VPN management
        server). It defines the VPNs, which gateways are members with which terminal prefixes (seed 000 Figure 2(3)),
        makes each group VPN's key and delivers it sealed to every member. Gateways (the papers' <em>MES</em>) find each
        other from the first packet by the key search and keep what they found in their <em>key table</em>.
      </Help>
      <div class="cards">
        <div class="card">
          <span class="big">{vpns.length}</span> VPNs
        </div>
        <div class="card">
          <span class="big" data-testid="online-count">
            {online}
          </span>{' '}
          gateways online
          {offline ? <span class="warn"> · {offline} offline</span> : null}
          {status.gateways.pending ? <span class="muted"> · {status.gateways.pending} pending</span> : null}
          {status.gateways.revoked ? <span class="muted"> · {status.gateways.revoked} revoked</span> : null}
        </div>
        <div class="card">
          <span class="big">{status.memberships}</span> memberships
        </div>
        <div class="card">
          version <span class="big">{status.version}</span> <span class="muted">({status.store})</span>
        </div>
      </div>

      <h2>VPNs</h2>
      <table data-testid="vpn-table">
        <TableHead columns={['name', 'VPN id', 'mode', 'members', 'key epoch', 'next rotation']} />
        <tbody>
          {vpns.map((v) => (
            <tr key={v.name}>
              <td>
                <a href={href.vpn(v.name)}>{v.name}</a>
              </td>
              <td>{v.id}</td>
              <td>{v.mode}</td>
              <td data-testid={`members-${v.name}`}>{v.members}</td>
              <td>{v.mode === 'group' ? (v.currentEpoch ?? '—') : <span class="muted">per path (IKE)</span>}</td>
              <td>{v.mode === 'group' ? (v.nextRotationAt ? relative(v.nextRotationAt, now) : 'on demand') : '—'}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <ActionForm
        label="Create VPN"
        action={async (f) => {
          const id = String(f.get('id') ?? '').trim();
          const hours = String(f.get('rotation') ?? '').trim();
          const v = await api.createVpn({
            name: String(f.get('name')),
            mode: f.get('mode') === 'pairwise' ? 'pairwise' : 'group',
            ...(id && { id: Number(id) }),
            ...(hours && { rotationPeriodMs: Math.round(Number(hours) * 3_600_000) }),
          });
          navigate(href.vpn(v.name));
        }}
      >
        <Field label="name">
          <input name="name" required maxLength={63} />
        </Field>
        <Field label="VPN id">
          <input name="id" inputMode="numeric" pattern="[0-9]*" placeholder="automatic" />
        </Field>
        <Field label="mode">
          <select name="mode">
            <option value="group">group (one key, seed 000)</option>
            <option value="pairwise">pairwise (IKE, seed 001)</option>
          </select>
        </Field>
        <Field label="rotate every (h)">
          <input name="rotation" inputMode="decimal" placeholder="default" />
        </Field>
      </ActionForm>

      <h2>Gateways</h2>
      <GatewayTable gateways={gateways} />
      <ActionForm
        label="Register gateway"
        action={async (f) => {
          const g = await api.addGateway(String(f.get('name')), String(f.get('address')));
          navigate(href.gateway(g.name));
        }}
      >
        <Field label="name">
          <input name="name" required maxLength={63} />
        </Field>
        <Field label="outside (WAN) address">
          <input name="address" required placeholder="198.51.100.1 or 2001:db8::1" />
        </Field>
      </ActionForm>

      {federation && (federation.peers.length > 0 || federation.permits.length > 0) ? (
        <>
          <h2>Permits expiring within {duration(federation.permitValidityMs / 4)}</h2>
          {soon.length === 0 ? (
            <p class="muted">
              None: every permit has more than {duration(federation.permitValidityMs / 4)} left (they are renewed when a
              third of their validity is left, so one this close to its end was not renewed).
            </p>
          ) : (
            <PermitTable permits={soon} overdue={overdue!} />
          )}
        </>
      ) : null}

      <h2>
        Recent changes{' '}
        <a href="/audit" class="small">
          (audit log)
        </a>
      </h2>
      <AuditTable entries={audit} />
    </section>
  );
}

function GatewayTable({ gateways }: { gateways: GatewayInfo[] }) {
  return (
    <table data-testid="gateway-table">
      <TableHead columns={['name', 'status', 'address', 'VPNs', 'last contact', 'paths', 'drops']} />
      <tbody>
        {gateways.map((g) => (
          <tr key={g.name}>
            <GatewayCells name={g.name} status={g.status} address={g.address} />
            <td>{g.vpns.join(', ') || '—'}</td>
            <td>
              <Contact r={g.lastReport} status={g.status} />
            </td>
            <td>{g.lastReport ? `${g.lastReport.paths} (${g.lastReport.encrypting} encrypting)` : '—'}</td>
            <td>{g.lastReport?.drops ?? '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// --- a VPN ------------------------------------------------------------------------------------

export function VpnPage({ name }: { name: string }) {
  const d = useData(async () => {
    const [vpn, gateways] = await Promise.all([api.vpn(name), api.gateways()]);
    return { vpn, gateways };
  }, [name]);
  if (!d.data) return <Problem error={d.error} />;
  const { vpn, gateways } = d.data;
  const now = Date.now();
  const model = buildMapModel(
    [vpn],
    gateways.filter((g) => vpn.memberList.some((m) => m.gateway === g.name)),
  );
  return (
    <section>
      <h1>
        VPN <span data-testid="vpn-name">{vpn.name}</span>
      </h1>
      <Problem error={d.error} />
      <Fields
        rows={[
          ['VPN id', <span class="mono">{vpn.id}</span>],
          [
            'mode',
            vpn.mode === 'group'
              ? 'group: one key per epoch, made here and delivered to every member (seed 000)'
              : 'pairwise: keys per path by IKE with permits (seed 001)',
          ],
          [
            'rotation',
            vpn.mode === 'group'
              ? vpn.rotationPeriodMs
                ? `every ${duration(vpn.rotationPeriodMs)}`
                : 'on demand only'
              : '—',
          ],
          [
            'next rotation',
            vpn.nextRotationAt ? `${time(vpn.nextRotationAt)} (${relative(vpn.nextRotationAt, now)})` : '—',
          ],
          ['current epoch', vpn.currentEpoch ?? '—'],
          ['created', time(vpn.createdAt)],
        ]}
      />
      <div class="actions">
        {vpn.mode === 'group' ? (
          <>
            <ConfirmButton
              label="Rotate"
              question="Make a new key epoch, active after the overlap?"
              action={() => api.rotate(vpn.name, false)}
            />
            <ConfirmButton
              label="Rotate now"
              question="Make a new key epoch, active at once?"
              action={() => api.rotate(vpn.name, true)}
            />
          </>
        ) : null}
        <ConfirmButton
          label="Delete VPN"
          danger
          question={
            vpn.memberList.length
              ? `Delete ${vpn.name} and its ${vpn.memberList.length} memberships?`
              : `Delete ${vpn.name}?`
          }
          action={async () => {
            await api.deleteVpn(vpn.name, vpn.memberList.length > 0);
            navigate('/');
          }}
        />
      </div>

      <h2>Members</h2>
      <Help>
        A membership says: this gateway puts the terminals of these prefixes into this VPN. Within one VPN every
        terminal sits behind at most one gateway; across VPNs the same prefix may appear again (multi-homing), or inside
        another gateway's prefix (a nested, multi-stage VPN).
      </Help>
      <table data-testid="member-table">
        <TableHead columns={['gateway', 'status', 'address', 'terminal prefixes', 'effective', '']} />
        <tbody>
          {vpn.memberList.map((m) => (
            <tr key={m.gateway}>
              <GatewayCells name={m.gateway} status={m.gatewayStatus} address={m.address} />
              <td>
                {m.prefixes.map((p) => (
                  <span class="chip mono" key={p}>
                    {p}
                    {m.prefixes.length > 1 ? (
                      <button
                        type="button"
                        class="chip-x"
                        title={`remove ${p}`}
                        aria-label={`remove ${p}`}
                        onClick={() =>
                          void api.updateMember(vpn.name, m.gateway, { remove: [p] }).catch(() => d.reload())
                        }
                      >
                        ×
                      </button>
                    ) : null}
                  </span>
                ))}
              </td>
              <td>{m.effective ? 'yes' : <span class="muted">when it enrolls</span>}</td>
              <td>
                <ConfirmButton
                  label="Remove"
                  danger
                  question={`Remove ${m.gateway} from ${vpn.name}? The VPN gets a new key at once.`}
                  action={() => api.removeMember(vpn.name, m.gateway)}
                />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <ActionForm
        label="Add member"
        action={async (f) => {
          const prefixes = String(f.get('prefixes'))
            .split(/[\s,]+/)
            .filter(Boolean);
          const gateway = String(f.get('gateway'));
          if (vpn.memberList.some((m) => m.gateway === gateway))
            await api.updateMember(vpn.name, gateway, { add: prefixes });
          else await api.addMember(vpn.name, gateway, prefixes);
        }}
      >
        <Field label="gateway">
          <select name="gateway" required>
            {gateways.map((g) => (
              <option value={g.name} key={g.name}>
                {g.name}
              </option>
            ))}
          </select>
        </Field>
        <Field label="terminal prefixes">
          <input name="prefixes" required placeholder="10.1.0.0/24, 2001:db8:1::/48" />
        </Field>
      </ActionForm>

      {vpn.memberList.length ? (
        <>
          <h2>Picture</h2>
          <Graph model={model} small onGateway={(g) => navigate(href.gateway(g))} />
        </>
      ) : null}

      {vpn.mode === 'group' ? (
        <>
          <h2>Key epochs</h2>
          <Help>Times only: keys never leave the authority except sealed to one member gateway's key.</Help>
          <table>
            <TableHead columns={['epoch', 'active from', 'expires', 'made']} />
            <tbody>
              {vpn.epochs.map((e) => (
                <tr key={e.epoch}>
                  <td>{e.epoch}</td>
                  <td>
                    {time(e.activeFrom)} <span class="muted">({relative(e.activeFrom, now)})</span>
                  </td>
                  <td>
                    {e.expiresAt >= Number.MAX_SAFE_INTEGER
                      ? 'not yet'
                      : `${time(e.expiresAt)} (${relative(e.expiresAt, now)})`}
                  </td>
                  <td>{time(e.createdAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </section>
  );
}

// --- the map ----------------------------------------------------------------------------------

export function MapPage() {
  const d = useData(
    async () => {
      const [list, gateways, federation] = await Promise.all([api.vpns(), api.gateways(), federationOrNone()]);
      const vpns: VpnDetail[] = await Promise.all(list.map((v) => api.vpn(v.name)));
      return buildMapModel(vpns, gateways, federation);
    },
    [],
    ['change'],
  );
  if (!d.data) return <Problem error={d.error} />;
  const model = d.data;
  return (
    <section class="map-page">
      <h1>Map</h1>
      <Help>
        Each VPN is a coloured region over its member gateways (dark boxes, the papers' MES) and the terminal prefixes
        they put into it (white). A gateway or prefix inside several regions is <em>multi-homed</em> (seed 000 Figure 2:
        terminal B behind MES#2 in VPN1 and VPN2). A gateway whose address lies inside another gateway's prefix sits in
        that prefix's box; a VPN made of such gateways runs <em>inside</em> the VPN that carries it (Figure 1(2),
        multi-stage: two ESP layers, set up by one key search). Dashed: pending gateways and gateways of peer
        authorities. Click a gateway for its key table.
      </Help>
      <div class="map-layout">
        <Graph model={model} onGateway={(g) => navigate(href.gateway(g))} />
        <div class="legend" data-testid="map-legend">
          <h2>VPNs</h2>
          <ul>
            {model.regions.map((r) => (
              <li key={r.vpn} data-vpn={r.vpn}>
                <span class={`swatch c${model.regions.indexOf(r) % 8}`} /> <a href={href.vpn(r.vpn)}>{r.vpn}</a>{' '}
                <span class="muted">
                  (id {r.vpnId}, {r.mode})
                </span>
                {r.nestedIn.length ? <div class="nested">runs inside {r.nestedIn.join(', ')}</div> : null}
                <ul class="members">
                  {r.members.map((m) => (
                    <li key={m}>{m}</li>
                  ))}
                </ul>
              </li>
            ))}
          </ul>
          {model.multiHomed.length ? (
            <>
              <h2>Multi-homed</h2>
              <ul data-testid="multi-homed">
                {model.multiHomed.map((m) => (
                  <li key={m.node}>
                    {m.label}: {m.vpns.join(', ')}
                  </li>
                ))}
              </ul>
            </>
          ) : null}
        </div>
      </div>
    </section>
  );
}

// --- a gateway --------------------------------------------------------------------------------

export function GatewayPage({ name }: { name: string }) {
  const d = useData(async () => {
    const g = await api.gateway(name);
    let report: GatewayStatusView | undefined;
    if (g.lastReport) report = await api.gatewayStatus(name).catch(() => undefined);
    return { g, report };
  }, [name]);
  const [issued, setIssued] = useState<{ token: string; expiresAt: number; url: string; fingerprint: string }>();
  if (!d.data) return <Problem error={d.error} />;
  const { g, report } = d.data;
  const c = g.certificate;
  return (
    <section>
      <h1>
        Gateway <span data-testid="gateway-name">{g.name}</span> <Badge kind={g.status}>{g.status}</Badge>
      </h1>
      <Help>
        A gateway is the papers' <em>MES</em> (multi-homing VPN execution server): it encrypts, relays or drops every
        packet of its terminals by its <em>key table</em>, which the key search fills from the first packet of each
        path. It reports its key table and counters to this authority every few seconds over its mutual-TLS channel.
      </Help>
      <Fields
        rows={[
          ['outside address', <span class="mono">{g.address}</span>],
          ['VPNs', g.vpns.length ? g.vpns.map((v, i) => [i ? ', ' : '', <a href={href.vpn(v)}>{v}</a>]) : '—'],
          ['last contact', <Contact r={g.lastReport} status={g.status} />],
          [
            'enrolled',
            g.enrolledAt
              ? `${time(g.enrolledAt)} (${c?.method === 'csr' ? 'online: token and CSR, its key never left it' : 'offline bundle'})`
              : 'not yet',
          ],
          ['revoked', g.revokedAt ? `${time(g.revokedAt)}: ${g.revokeReason}` : '—'],
          ['registered', time(g.createdAt)],
        ]}
      />
      <h2>Certificate</h2>
      {c ? (
        <Fields
          rows={[
            ['serial', <span class="mono">{c.serial}</span>],
            ['SHA-256 fingerprint', <span class="mono wrap">{c.fingerprint}</span>],
            ['issued', time(c.issuedAt)],
            ['expires', `${time(c.notAfter)} (${relative(c.notAfter)})`],
            ['revoked', c.revokedAt ? `${time(c.revokedAt)} (${c.revokeReason})` : '—'],
          ]}
        />
      ) : (
        <p class="muted">None yet: the gateway enrolls with a token (online) or a bundle (offline).</p>
      )}

      <div class="actions">
        <ActionForm
          label="Make enrollment token"
          action={async (f) => {
            const minutes = Number(f.get('ttl') || 60);
            const t = await api.enrollToken(g.name, {
              ttlSeconds: Math.round(minutes * 60),
              replace: f.get('replace') === 'on',
            });
            setIssued({
              token: t.token,
              expiresAt: t.expiresAt,
              url: t.authority.url,
              fingerprint: t.authority.caFingerprint,
            });
          }}
        >
          <Field label="valid for (min)">
            <input name="ttl" inputMode="numeric" placeholder="60" size={5} />
          </Field>
          <label class="check">
            <input type="checkbox" name="replace" /> re-enroll (new key)
          </label>
        </ActionForm>
        <ActionForm
          label="Download bundle"
          action={async (f) => {
            // The bundle holds the gateway's private key: it goes into a file, never onto the page.
            const b = await api.bundle(g.name, { replace: f.get('replace') === 'on' });
            const url = URL.createObjectURL(
              new Blob([JSON.stringify(b, null, 2) + '\n'], { type: 'application/json' }),
            );
            const a = document.createElement('a');
            a.href = url;
            a.download = `${g.name}.bundle.json`;
            a.click();
            setTimeout(() => URL.revokeObjectURL(url), 10_000);
          }}
        >
          <label class="check">
            <input type="checkbox" name="replace" /> re-issue (new key)
          </label>
        </ActionForm>
        {g.status !== 'revoked' ? <RevokeForm name={g.name} /> : null}
      </div>
      {issued ? (
        <div class="issued" role="status" data-testid="issued-token">
          <p>
            One-time enrollment token for {g.name}, valid until {time(issued.expiresAt)}. It is shown only now; copy it
            to the gateway:
          </p>
          <pre class="mono wrap">{`kasane gateway enroll --data DIR --url ${issued.url} --token ${issued.token} --ca-fingerprint ${issued.fingerprint}`}</pre>
          <button type="button" onClick={() => setIssued(undefined)}>
            Done (forget it)
          </button>
        </div>
      ) : null}

      {report ? <Report view={report} /> : <p class="muted">No status report from this gateway yet.</p>}
    </section>
  );
}

function RevokeForm({ name }: { name: string }) {
  const [open, setOpen] = useState(false);
  if (!open)
    return (
      <button type="button" class="danger" onClick={() => setOpen(true)}>
        Revoke…
      </button>
    );
  return (
    <ActionForm
      label="Revoke gateway"
      class="inline-form danger-zone"
      action={async (f) => {
        await api.revoke(name, {
          reason: String(f.get('reason') || '') || undefined,
          compromised: f.get('compromised') === 'on',
        });
        setOpen(false);
      }}
    >
      <span>Revoke {name}: its certificate is refused from now on and every VPN it is in gets a new key at once.</span>
      <Field label="reason">
        <input name="reason" maxLength={500} />
      </Field>
      <label class="check">
        <input type="checkbox" name="compromised" /> key compromised
      </label>
    </ActionForm>
  );
}

function Report({ view }: { view: GatewayStatusView }) {
  const r = view.report;
  const counters = Object.entries(r.counters).sort(([a], [b]) => a.localeCompare(b));
  const drops = counters.filter(([k]) =>
    /^(executor\.)?drop\.|^datapath\.(punt\.dropped|rx\.bad|udp-punt\.)|^kernel\..*queue-dropped$/.test(k),
  );
  const search = counters.filter(([k]) => k.startsWith('search.'));
  return (
    <>
      <h2>
        Status{' '}
        <span class="muted small">
          reported {relative(view.receivedAt)}, up {duration(r.uptimeMs)}, configuration version {r.authorityVersion}
        </span>
      </h2>
      <p>
        VPNs held:{' '}
        {r.vpns.map((v, i) => (
          <span key={v.id}>
            {i ? ', ' : ''}
            {v.name} (id {v.id}, {v.mode}
            {v.epoch !== undefined ? `, epoch ${v.epoch}` : ''})
          </span>
        ))}
        {r.vpns.length === 0 ? 'none' : null}
      </p>
      <h3>
        Key table{' '}
        <span class="muted small">
          ({r.pathsTotal} paths{r.pathsTotal > r.paths.length ? `, the ${r.paths.length} used most recently shown` : ''}
          )
        </span>
      </h3>
      <table data-testid="key-table" class="dense">
        <TableHead
          columns={[
            'local',
            'remote',
            'action',
            'VPN',
            'peer',
            'layers (outermost first)',
            'MTU',
            'age',
            'idle',
            'packets',
            'bytes',
            'why',
          ]}
        />
        <tbody>
          {r.paths.length === 0 ? (
            <NoRows columns={12}>empty: no terminal behind this gateway has sent anything lately</NoRows>
          ) : null}
          {r.paths.map((p) => (
            <tr key={`${p.local}>${p.remote}`} class={`action-${p.action}`}>
              <td class="mono">{p.local}</td>
              <td class="mono">{p.remote}</td>
              <td>
                <Badge kind={p.action}>{p.action}</Badge>
              </td>
              <td>{p.vpnName ?? p.vpnId ?? '—'}</td>
              <td>{p.peer ?? '—'}</td>
              <td class="mono">
                {(p.layers ?? []).map((l) => `${l.vpnId} (${l.gateways.join(' ~ ')})`).join(' > ') || '—'}
              </td>
              <td>{p.mtu ?? '—'}</td>
              <td>{duration(p.ageMs)}</td>
              <td>{duration(p.idleMs)}</td>
              <td>{p.packets}</td>
              <td>{bytes(p.bytes)}</td>
              <td>{p.reason ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {r.ike.length ? (
        <>
          <h3>IKE SAs (pairwise VPNs)</h3>
          <table class="dense">
            <TableHead columns={['peer', 'VPN id', 'role', 'state', 'remote', 'age', 'Child SAs']} />
            <tbody>
              {r.ike.map((i, n) => (
                <tr key={n}>
                  <td>{i.peer ?? '—'}</td>
                  <td>{i.vpnId ?? '—'}</td>
                  <td>{i.role}</td>
                  <td>{i.state}</td>
                  <td class="mono">{i.remote}</td>
                  <td>{duration(i.ageMs)}</td>
                  <td>{i.childSas}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      <div class="two">
        <div>
          <h3>Key search</h3>
          <CounterTable rows={search} testid="search-counters" />
        </div>
        <div>
          <h3>Drops by reason</h3>
          <CounterTable rows={drops} testid="drop-counters" />
        </div>
      </div>
    </>
  );
}

/** A table body's row when there is nothing to list. */
/** The first cells of a row about a gateway: its name (a link to its page), its status and its address. */
function GatewayCells({ name, status, address }: { name: string; status: string; address: string }) {
  return (
    <>
      <td>
        <a href={href.gateway(name)}>{name}</a>
      </td>
      <td>
        <Badge kind={status}>{status}</Badge>
      </td>
      <td class="mono">{address}</td>
    </>
  );
}

function NoRows({ columns, children }: { columns: number; children: string }) {
  return (
    <tr>
      <td colSpan={columns} class="muted">
        {children}
      </td>
    </tr>
  );
}

function CounterTable({ rows, testid }: { rows: [string, number][]; testid: string }) {
  return (
    <table class="dense counters" data-testid={testid}>
      <tbody>
        {rows.map(([k, v]) => (
          <tr key={k} class={v ? '' : 'zero'}>
            <td class="mono">{k}</td>
            <td class="num">{v}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// --- audit ------------------------------------------------------------------------------------

function AuditTable({ entries }: { entries: AuditEntry[] }) {
  return (
    <table class="dense" data-testid="audit-table">
      <TableHead columns={['#', 'when', 'who', 'what', 'VPN', 'gateway', 'detail']} />
      <tbody>
        {entries.length === 0 ? <NoRows columns={7}>no entry</NoRows> : null}
        {entries.map((e) => (
          <tr key={e.id}>
            <td>{e.id}</td>
            <td>{time(e.at)}</td>
            <td>{e.actor}</td>
            <td class="mono">{e.action}</td>
            <td>{e.vpn ? <a href={href.vpn(e.vpn)}>{e.vpn}</a> : ''}</td>
            <td>{e.gateway ? <a href={href.gateway(e.gateway)}>{e.gateway}</a> : ''}</td>
            <td class="mono detail">{JSON.stringify(e.detail)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const toLocalInput = (ms: string | null) =>
  ms ? new Date(Number(ms) - new Date().getTimezoneOffset() * 60_000).toISOString().slice(0, 16) : '';

export function AuditPage({ query }: { query: URLSearchParams }) {
  const q = Object.fromEntries(
    ['actor', 'action', 'vpn', 'gateway', 'from', 'to', 'before'].map((k) => [k, query.get(k) ?? undefined]),
  );
  const d = useData(() => api.audit({ ...q, order: 'desc', limit: 200 }), [query.toString()]);
  return (
    <section>
      <h1>Audit log</h1>
      <Help>
        Who changed what, when: one entry per change (or several when one change does several things). Times are UTC;
        the filters take your local time.
      </Help>
      <form
        class="inline-form"
        key={query.toString()}
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget as HTMLFormElement);
          const u = new URLSearchParams();
          for (const k of ['actor', 'action', 'vpn', 'gateway'])
            if (String(f.get(k) ?? '').trim()) u.set(k, String(f.get(k)).trim());
          for (const k of ['from', 'to']) if (f.get(k)) u.set(k, String(new Date(String(f.get(k))).getTime()));
          navigate(`/audit${u.size ? `?${u.toString()}` : ''}`);
        }}
      >
        <Field label="who">
          <input name="actor" defaultValue={q.actor ?? ''} placeholder="admin:alice" />
        </Field>
        <Field label="what">
          <input name="action" defaultValue={q.action ?? ''} placeholder="member. or gateway.revoke" />
        </Field>
        <Field label="VPN">
          <input name="vpn" defaultValue={q.vpn ?? ''} />
        </Field>
        <Field label="gateway">
          <input name="gateway" defaultValue={q.gateway ?? ''} />
        </Field>
        <Field label="from">
          <input name="from" type="datetime-local" defaultValue={toLocalInput(query.get('from'))} />
        </Field>
        <Field label="to">
          <input name="to" type="datetime-local" defaultValue={toLocalInput(query.get('to'))} />
        </Field>
        <button type="submit">Filter</button>
        <a href="/audit">clear</a>
      </form>
      <Problem error={d.error} />
      {d.data ? (
        <>
          <AuditTable entries={d.data} />
          {d.data.length === 200 ? (
            <p>
              <a
                href={`/audit?${(() => {
                  const u = new URLSearchParams(query);
                  u.set('before', String(d.data[d.data.length - 1].id));
                  return u.toString();
                })()}`}
              >
                older entries
              </a>
            </p>
          ) : null}
        </>
      ) : null}
    </section>
  );
}

// --- federation -------------------------------------------------------------------------------

function PermitTable({
  permits,
  overdue,
}: {
  permits: FederationView['permits'];
  overdue: ReturnType<typeof renewalOverdue>;
}) {
  const now = Date.now();
  const dir = { out: 'issued to', in: 'received for', local: 'issued (local) to' } as const;
  return (
    <table class="dense" data-testid="permit-table">
      <TableHead columns={['VPN', 'permit', 'holder', 'peer authority', 'expires']} />
      <tbody>
        {permits.length === 0 ? <NoRows columns={5}>no permit</NoRows> : null}
        {permits.map((p) => (
          <tr key={`${p.vpnId}/${p.peer}/${p.holder}/${p.direction}`} class={overdue(p, now) ? 'soon' : ''}>
            <td>
              <a href={href.vpn(p.vpn)}>{p.vpn}</a>
            </td>
            <td>{dir[p.direction]}</td>
            <td>{p.direction === 'out' ? `${p.holder} @ ${p.peer}` : p.holder}</td>
            <td>{p.peer || '—'}</td>
            <td>
              {time(p.notAfter)} <span class="muted">({relative(p.notAfter, now)})</span>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function FederationPage() {
  const d = useData(async () => ({ view: await federationOrNone() }), []);
  if (!d.data) return <Problem error={d.error} />;
  const f = d.data.view;
  if (!f) return <p class="muted">Federation is off on this authority (it has no attribute authority).</p>;
  return (
    <section>
      <h1>Federation</h1>
      <Help>
        Seed 001: gateways under different authorities meet in <em>pairwise</em> VPNs. The key search finds the peer
        gateway, then the two run IKEv2, each authorised by a<em> permit</em> (an attribute certificate) that the other
        side's authority issued. Authorities exchange members and permits over mutual TLS; a withdrawn permit is no
        longer delivered, and a permit ends at its expiry at the latest. Peers and shares are set with{' '}
        <span class="mono">kasane authority peer add</span> and <span class="mono">kasane vpn share</span>.
      </Help>
      <h2>Peer authorities</h2>
      <table class="dense" data-testid="peer-table">
        <TableHead columns={['name', 'URL', 'root fingerprint', 'last exchange', 'last error']} />
        <tbody>
          {f.peers.length === 0 ? <NoRows columns={5}>no peer authority yet</NoRows> : null}
          {f.peers.map((p) => (
            <tr key={p.name}>
              <td>{p.name}</td>
              <td class="mono">{p.url}</td>
              <td class="mono wrap small">{p.rootFingerprint}</td>
              <td>{relative(p.lastSyncAt)}</td>
              <td class="problem-text">{p.lastError ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Shared VPNs</h2>
      <table class="dense" data-testid="share-table">
        <TableHead columns={['VPN', 'shared with', 'their members', 'permits received / issued']} />
        <tbody>
          {f.shares.length === 0 ? <NoRows columns={4}>no VPN shared with a peer</NoRows> : null}
          {f.shares.map((s) => (
            <tr key={`${s.vpn}/${s.peer}`}>
              <td>
                <a href={href.vpn(s.vpn)}>{s.vpn}</a> <span class="muted">(id {s.vpnId})</span>
              </td>
              <td>{s.peer}</td>
              <td>
                {s.foreignMembers.map((m) => `${m.gateway} (${m.address}) + ${m.prefixes.join(', ')}`).join('; ') || (
                  <span class="muted">none yet</span>
                )}
              </td>
              <td>
                {s.permitsIn} / {s.permitsOut}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Permits</h2>
      <PermitTable permits={[...f.permits].sort((a, b) => a.notAfter - b.notAfter)} overdue={renewalOverdue(f)} />
    </section>
  );
}
