package rpc

// Method names of the internal RPC. The request/response type of each is
// noted beside it.
const (
	MethodKVSApply    = "KVS.Apply"    // *KVSRequest -> *bool
	MethodKVSGet      = "KVS.Get"      // *KeyRequest -> *IndexedKVEntries (exact key; empty Entries when missing)
	MethodKVSList     = "KVS.List"     // *KeyRequest -> *IndexedKVEntries (prefix = Key)
	MethodKVSListKeys = "KVS.ListKeys" // *KeyListRequest -> *IndexedKeyList

	MethodCatalogRegister        = "Catalog.Register"        // *RegisterRequest -> *struct{}
	MethodCatalogDeregister      = "Catalog.Deregister"      // *DeregisterRequest -> *struct{}
	MethodCatalogListDatacenters = "Catalog.ListDatacenters" // *DCSpecificRequest -> *[]string
	MethodCatalogListNodes       = "Catalog.ListNodes"       // *DCSpecificRequest -> *IndexedNodes
	MethodCatalogListServices    = "Catalog.ListServices"    // *DCSpecificRequest -> *IndexedServices
	MethodCatalogServiceNodes    = "Catalog.ServiceNodes"    // *ServiceSpecificRequest -> *IndexedServiceNodes
	MethodCatalogNodeServices    = "Catalog.NodeServices"    // *NodeSpecificRequest -> *IndexedNodeServices
	MethodCatalogNodeServiceList = "Catalog.NodeServiceList" // *NodeSpecificRequest -> *IndexedNodeServiceList

	MethodHealthNodeChecks    = "Health.NodeChecks"    // *NodeSpecificRequest -> *IndexedHealthChecks
	MethodHealthServiceChecks = "Health.ServiceChecks" // *ServiceSpecificRequest -> *IndexedHealthChecks
	MethodHealthChecksInState = "Health.ChecksInState" // *ChecksInStateRequest -> *IndexedHealthChecks
	MethodHealthServiceNodes  = "Health.ServiceNodes"  // *ServiceSpecificRequest -> *IndexedCheckServiceNodes

	MethodStatusLeader = "Status.Leader" // *struct{} -> *string ("" when there is none)
	MethodStatusPeers  = "Status.Peers"  // *struct{} -> *[]string
)
