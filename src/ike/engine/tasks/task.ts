// The shape every exchange's task has (strongSwan's task_t: build and process, for each role). A
// task file holds one exchange. For the initiator, `build…` makes the request and
// `process…Response` reads the answer; for the responder, `answer…` reads the request and makes
// the response. Each takes the SA it works on first, then the TaskContext (the part it needs),
// then the message; none sends, keeps timers or touches another SA: the engine's dispatch
// (engine.ts) calls the answers, and the initiator's pairs run in the exchange layer
// (exchange.ts) as an ExchangeTask (ike-sa.ts).
//
//   exchange               initiator                                    responder
//   IKE_SA_INIT            buildInitRequest / processInitResponse       answerInitRequest
//   IKE_AUTH               buildAuthRequest / processAuthResponse       answerAuthRequest
//   CREATE_CHILD_SA        buildChildRekey / processChildRekeyResponse  answerChildRekey
//   CREATE_CHILD_SA (IKE)  buildIkeRekey / processIkeRekeyResponse      answerIkeRekey
//   INFORMATIONAL          deleteChildren, deleteIke (no answer to read) answerInformational
import type { Endpoint, IkePeer, IkeTimers, LocalIdentity } from '../types.js';
import type { RandomSource } from '../../../base/random.js';

/** What a task may use besides its SA and the message: who and where we are, randomness, limits, the clock. */
export interface TaskContext {
  local: LocalIdentity;
  /** Our address and IKE port as peers see them. */
  endpoint: Endpoint;
  /** The pairwise peers our authority delivers now. */
  peers: () => IkePeer[];
  random: RandomSource;
  timers: IkeTimers;
  now: number;
}
