import sys, json
from functools import partial
from tracking import _ours, run_tracker, score_variant, PEERS
from tracking_variants import load_variant, VARIANTS
from storesense.vision.tracking import TrackerConfig
names=[("TUD-Campus",0),("TUD-Campus",1),("PETS09-S2L1",0),("PETS09-S2L1",1)]
names+= [(n,i) for n in ("PETS09-S2L1","TUD-Campus") for i in range(3,len(VARIANTS)) if (VARIANTS[i].key=="" ) or __import__('pathlib').Path(f"results/detections_{n}_{VARIANTS[i].key}_yolox-nano_0.05.npz").exists()]
seqs=[load_variant(n,VARIANTS[i]) for n,i in names]
print("    ".join(f"{n[:4]} {VARIANTS[i].name}" for n,i in names))
for arg in sys.argv[1:]:
    kw=json.loads(arg)
    out=[]
    for seq in seqs:
        s=score_variant(seq,run_tracker(partial(_ours,config=TrackerConfig(**kw)),seq)[0])
        out.append("%5.1f %5.1f"%(s.hota,s.idf1))
    print(kw," | ".join(out), flush=True)
