// The API's JSON, as the console uses it: the authority's own wire types (src/authority/wire.ts),
// shared at compile time only.
export type {
  AuditEntry,
  EpochInfo,
  GatewayInfo,
  GatewayReport,
  GatewayStatusView,
  MemberInfo,
  ReportedPath,
  ReportSummary,
  StatusView,
  VpnDetail,
  VpnInfo,
  FederationView,
  SessionView,
} from '../../src/authority/wire.js';
