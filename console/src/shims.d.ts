// cytoscape-fcose ships no type declarations: it is a cytoscape extension (cytoscape.use).
declare module 'cytoscape-fcose' {
  const fcose: cytoscape.Ext;
  export default fcose;
}
