// The IPVS client and the identities other modules use to name services and destinations.
export { IpvsClient, IpvsClientOptions, NewServiceOptions, WeightChange } from './ipvs';
export {
  Destination,
  DestinationOptions,
  ForwardMethod,
  IpvsInfo,
  IpvsStats,
  IpvsTimeouts,
  Service,
  ServiceOptions,
  TunnelOptions,
  TunnelType,
} from './types';
export { IP_VS_SVC_F } from './constants';
export { IpvsError, IpvsOperation } from './errors';
export {
  AddressServiceId,
  DestinationId,
  DestinationRef,
  FwmarkServiceId,
  IdentityError,
  Protocol,
  ServiceId,
  ServiceRef,
  describeService,
  destinationKey,
  parseDestination,
  parseService,
  sameDestination,
  sameService,
  serviceKey,
  toDestinationId,
  toServiceId,
} from './identity';
