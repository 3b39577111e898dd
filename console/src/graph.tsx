// A map drawn with Cytoscape.js (graph rendering and the fCoSE force layout, which keeps compound
// nodes — a prefix box with the gateways behind it — together) and BubbleSets (an outline around
// each VPN's members that may overlap the others': the regions of seed 000 Figures 1 and 2).
// Labels are drawn on the canvas as text, never parsed as HTML.
import cytoscape, { type Core, type ElementDefinition } from 'cytoscape';
import fcose from 'cytoscape-fcose';
import BubbleSets from 'cytoscape-bubblesets';
import { useEffect, useRef } from 'preact/hooks';
import type { MapModel } from './map-model.js';

cytoscape.use(fcose);
cytoscape.use(BubbleSets as unknown as cytoscape.Ext);

/** Boxes as wide as their label (text is drawn on the canvas: about 7 px a character at 12 px). */
const labelWidth = (n: cytoscape.NodeSingular): number => Math.max(24, String(n.data('label')).length * 7);

const STYLE: cytoscape.StylesheetJson = [
  {
    selector: 'node',
    style: {
      label: 'data(label)',
      'font-family': 'system-ui, sans-serif',
      'font-size': 12,
      color: '#0f172a',
      'text-valign': 'center',
      'text-halign': 'center',
    },
  },
  {
    selector: 'node[kind = "gateway"]',
    style: {
      shape: 'round-rectangle',
      width: labelWidth,
      height: 26,
      padding: '8px',
      'background-color': '#1e293b',
      color: '#f8fafc',
      'font-weight': 'bold',
      'border-width': 2,
      'border-color': '#1e293b',
    },
  },
  {
    selector: 'node[kind = "gateway"][status = "pending"]',
    style: { 'background-color': '#f8fafc', color: '#334155', 'border-style': 'dashed', 'border-color': '#64748b' },
  },
  {
    selector: 'node[kind = "gateway"][status = "revoked"]',
    style: { 'background-color': '#fee2e2', color: '#991b1b', 'border-color': '#dc2626' },
  },
  {
    selector: 'node[kind = "foreign"]',
    style: {
      shape: 'cut-rectangle',
      width: labelWidth,
      height: 26,
      padding: '8px',
      'background-color': '#e2e8f0',
      'border-width': 2,
      'border-style': 'dashed',
      'border-color': '#475569',
    },
  },
  {
    selector: 'node[kind = "prefix"]',
    style: {
      shape: 'round-rectangle',
      width: labelWidth,
      height: 22,
      padding: '6px',
      'background-color': '#ffffff',
      'border-width': 1,
      'border-color': '#94a3b8',
      'font-size': 11,
    },
  },
  {
    selector: 'node[kind = "prefix"]:parent',
    style: {
      'text-valign': 'top',
      'text-halign': 'center',
      'text-margin-y': -4,
      padding: '18px',
      'background-color': '#f8fafc',
      'background-opacity': 0.6,
      'border-style': 'solid',
    },
  },
  {
    selector: 'node[kind = "wan"]',
    style: {
      shape: 'ellipse',
      width: 70,
      height: 44,
      'background-color': '#e2e8f0',
      'border-width': 1,
      'border-color': '#94a3b8',
      color: '#475569',
    },
  },
  {
    selector: 'node[kind = "label"]',
    style: {
      'background-opacity': 0,
      'border-width': 0,
      width: 1,
      height: 1,
      'font-size': 15,
      'font-weight': 'bold',
      color: 'data(color)',
      events: 'no',
    },
  },
  { selector: 'edge', style: { width: 1.5, 'line-color': '#94a3b8', 'curve-style': 'straight' } },
  { selector: 'edge[kind = "wan"]', style: { 'line-style': 'dashed', 'line-color': '#cbd5e1' } },
  { selector: 'edge[kind = "affinity"]', style: { opacity: 0, events: 'no' } },
  { selector: 'node:selected', style: { 'border-width': 3, 'border-color': '#f59e0b' } },
];

/** A small deterministic random source: the same configuration gets the same picture every time. */
function seeded(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}

function elements(model: MapModel): ElementDefinition[] {
  return [
    ...model.nodes.map((n) => ({
      data: {
        id: n.id,
        label: n.kind === 'gateway' && n.status === 'revoked' ? `${n.label} (revoked)` : n.label,
        kind: n.kind,
        status: n.status ?? '',
        gateway: n.gateway ?? '',
        ...(n.parent && { parent: n.parent }),
      },
    })),
    ...model.edges.map((e) => ({ data: { id: e.id, source: e.source, target: e.target, kind: e.kind } })),
  ];
}

export interface GraphProps {
  model: MapModel;
  /** A click on a gateway. */
  onGateway?: (name: string) => void;
  /** A smaller picture (a VPN's page). */
  small?: boolean;
}

export function Graph({ model, onGateway, small }: GraphProps) {
  const box = useRef<HTMLDivElement>(null);
  const key = JSON.stringify(model);
  useEffect(() => {
    if (!box.current) return;
    const cy: Core = cytoscape({
      container: box.current,
      elements: elements(model),
      style: STYLE,
      minZoom: 0.3,
      maxZoom: 3,
      boxSelectionEnabled: false,
    });
    // fCoSE draws random starting positions: from a seed of the model, the picture is stable.
    const random = Math.random;
    Math.random = seeded(hash(key));
    try {
      cy.layout({
        name: 'fcose',
        quality: 'proof',
        randomize: true,
        animate: false,
        fit: true,
        padding: 50,
        nodeSeparation: 90,
        nodeRepulsion: () => 9000,
        idealEdgeLength: (e: cytoscape.EdgeSingular) =>
          e.data('kind') === 'affinity' ? 170 : e.data('kind') === 'wan' ? 150 : 70,
        edgeElasticity: (e: cytoscape.EdgeSingular) => (e.data('kind') === 'affinity' ? 0.2 : 0.45),
        nestingFactor: 0.4,
        gravity: 0.3,
        numIter: 3000,
        tile: true,
      } as cytoscape.LayoutOptions).run();
    } finally {
      Math.random = random;
    }
    // The map is wider than high: a layout that came out upright (nested sites, one above the
    // other) is turned a quarter, so that it fills the width instead of shrinking to the height.
    const laid = cy.nodes().boundingBox({});
    if (laid.h > laid.w * 1.2) {
      cy.nodes()
        .filter((n) => n.isChildless())
        .positions((n) => ({ x: n.position('y'), y: -n.position('x') }));
    }
    // Each VPN: an outline around its members, and its name above them.
    const bubbles = (
      cy as unknown as {
        bubbleSets(): {
          addPath(n: cytoscape.NodeCollection, e: null, a: cytoscape.NodeCollection | null, o: object): void;
        };
      }
    ).bubbleSets();
    for (const r of model.regions) {
      let members = cy.collection();
      for (const id of r.nodes) members = members.union(cy.getElementById(id));
      if (members.empty()) continue;
      const others = cy
        .nodes()
        .filter(
          (n) =>
            n.data('kind') !== 'label' &&
            !members.has(n) &&
            !members.ancestors().has(n) &&
            !members.descendants().has(n),
        );
      bubbles.addPath(members, null, others, {
        virtualEdges: true,
        style: { fill: r.color, fillOpacity: '0.16', stroke: r.color, strokeWidth: '2', strokeOpacity: '0.9' },
      });
      const bb = members.boundingBox({});
      cy.add({
        group: 'nodes',
        data: {
          id: `label:${r.vpn}`,
          kind: 'label',
          label: r.mode === 'pairwise' ? `${r.vpn} (pairwise)` : r.vpn,
          color: r.color,
        },
        position: { x: (bb.x1 + bb.x2) / 2, y: bb.y1 - 18 },
        locked: true,
        grabbable: false,
      });
    }
    cy.fit(undefined, 40);
    cy.on('tap', 'node', (ev) => {
      const n = ev.target as cytoscape.NodeSingular;
      if (n.data('kind') === 'gateway') onGateway?.(n.data('gateway') as string);
    });
    return () => cy.destroy();
  }, [key]);
  return (
    <div
      class={small ? 'graph small' : 'graph'}
      ref={box}
      role="img"
      aria-label="map of the VPNs as regions over gateways and terminal prefixes"
    />
  );
}
