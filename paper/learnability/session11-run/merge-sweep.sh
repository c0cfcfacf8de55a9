set -e
R=/work/s11/runs/v800b; E=$R/experts
X="$E/adult_medicine/gba,$E/pediatrics/gba,$E/brain_senses/gba,$E/oncology_surgery/gba"
cd /work/main
run() { name=$1; shift; ./mmx merge --base /work/ptf/out --experts $X "$@" --out /work/s11/mv-$name > /dev/null 2>&1
  ./mmx eval --base /work/s11/mv-$name --bench medsynth --data $R/data/val400.jsonl --out /work/s11/ev-$name --max-new-tokens 96 > /dev/null 2>&1
  python3 -c "
import json;r=json.load(open('/work/s11/ev-$name/results.json'));print('$name',round(100*r['accuracy'],1),[round(100*r['ci95'][k],1) for k in ('low','high')],'invalid',round(100*r['invalid_format_rate'],1),{k:round(100*v['accuracy']) for k,v in r['by_group']['specialty'].items()})"; }
run ca-d0.5-l1 --method conflict_aware --density 0.5 --lambda 1
run ca-d0.2-l1 --method conflict_aware --density 0.2 --lambda 1
run ca-d0.5-l0.5 --method conflict_aware --density 0.5 --lambda 0.5
run ca-d0.2-l0.5 --method conflict_aware --density 0.2 --lambda 0.5
run ties-d0.2-l1 --method ties --density 0.2 --lambda 1
