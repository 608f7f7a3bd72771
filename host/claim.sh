# of-claim <box> <stack>
#
# One machine belongs to one box of one stack. Run by the library's activate (after its checksums,
# before it is made current): a second stack that declares this machine (a copied stack file, a
# box in two host groups), or a second box of one stack under another name of the machine, would
# otherwise take down the first one's instances, replace its containers and remove its library
# versions. The claim is the file $OF_CLAIM_FILE, one line `<stack> <box>` (the stack's
# organization/project/stack):
#   - none yet: this box of this stack claims the machine (a box deployed before claims existed too);
#   - this box's of this stack: nothing to do;
#   - any other: refused, naming both, before anything on the machine changes.
# The box's teardown (of-apply remove) gives the claim up. Checked and written under the box lock,
# so two deployments at once cannot both claim the machine.

[ "$#" -eq 2 ] || of_usage "usage: of-claim <box> <stack>"
of_check_id "$1/x"
box=$1
stack=$2
# organization/project/stack as Pulumi spells them: no blank, no quote, nothing the one line holds apart.
case $stack in
    '' | *[!A-Za-z0-9_./-]*) of_usage "stack '$stack' must be <organization>/<project>/<stack> of letters, digits and _ . - /" ;;
esac

of_box_lock
of_claim_read
if [ -n "$OF_OWNER" ] && [ "$OF_OWNER" != "$stack $box" ]; then
    of_die "this machine is box '$OF_OWNER_BOX' of stack '$OF_OWNER_STACK' (its claim: $OF_CLAIM_FILE), not box '$box' of stack '$stack': one machine belongs to one box of one stack. Take it out of one of them (a pulumi up without it, or a destroy, takes it down there); if that stack is gone or was renamed, delete $OF_CLAIM_FILE. This deployment changed nothing on the machine but its copy of the host library"
fi
if [ -z "$OF_OWNER" ]; then
    # A new file of our own (mktemp: never through a symlink someone put there), then renamed onto
    # the claim's name (-T: never into a directory of that name).
    mkdir -p -- "${OF_CLAIM_FILE%/*}" &&
        claim_new=$(mktemp "$OF_CLAIM_FILE.new.XXXXXX") &&
        printf '%s %s\n' "$stack" "$box" >"$claim_new" &&
        mv -fT -- "$claim_new" "$OF_CLAIM_FILE" ||
        { [ -z "${claim_new-}" ] || rm -f -- "$claim_new"; of_die "cannot write the claim '$OF_CLAIM_FILE'"; }
fi
printf 'ok claim: this machine is box %s of stack %s\n' "$box" "$stack"
