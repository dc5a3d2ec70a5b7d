#include "harness.h"
#include "tap.h"
int main(void)
{
        harness_init(60);
        return harness_done();
}
